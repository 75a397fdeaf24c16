"""Vector building blocks of the event-driven LSNN kernels (:mod:`._lsnn_event_kernels`).

Index scans that list the non-zero entries of a row (spikes, a derivative) or the entries inside
the triangular surrogate's support (``|s| < 1``), 16 at a time with AVX-512's vector compress where
the CPU has it; a software prefetch of a whole row; dot products that LLVM vectorises. Each is
compiled by numba into the kernels that call it, and is tested on its own against NumPy
(``tests/functional/test_event_primitives.py``).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic

__all__ = [
    "LANES", "VECTOR_SCAN", "dot", "dot2", "gap_support", "prefetch_row", "scan", "spikes_and_gap_support", "support",
]


@njit(cache=True, fastmath={"reassoc", "contract", "nsz"})
def dot(row, vec, n, acc):  # pragma: no cover - compiled
    """``acc + sum_k row[k] * vec[k]``, reassociated (vectorised); a fixed order once compiled."""
    for k in range(n):
        acc += row[k] * vec[k]
    return acc


def _host_has_avx512() -> bool:
    try:
        import llvmlite.binding as llvm

        return bool(llvm.get_host_cpu_features().get("avx512f", False))
    except Exception:  # pragma: no cover - depends on the platform
        return False


#: Whether the index scans (:func:`support` and its twins) pack 16 indices per step with a
#: vector compress (AVX-512's ``vpcompressd``; 3x faster than the scalar scan on this project's
#: machines) or run the branch-free scalar loop. Both write the same lists. Decided from the host
#: CPU when the module is imported: without AVX-512, LLVM would emulate the compress lane by lane.
VECTOR_SCAN = _host_has_avx512()

#: Lanes of one vector scan step.
LANES = 16


def _compress_codegen(kind):
    """LLVM IR of one scan step: the indices ``base .. base + 15`` whose ``vals`` entry passes
    the test (``kind``: ``"nonzero"``, ``x != 0`` as Python compares, true for NaN; ``"gap"``,
    ``|x| < 1``, false for NaN), packed to the front of a 16-lane int32 vector that is stored
    whole at ``out[m]``; returns how many passed. The lanes past the count hold junk that later
    steps overwrite or the count excludes; the store stays inside ``out`` as long as
    ``m <= base`` and ``base + 16 <= len(out)``, which the callers guarantee."""

    def codegen(context, builder, sig, args):
        vals, base, ref, out, m = args
        fty = context.get_value_type(sig.args[0].dtype)
        i32 = ir.IntType(32)
        vf, vi, vb = ir.VectorType(fty, LANES), ir.VectorType(i32, LANES), ir.VectorType(ir.IntType(1), LANES)
        splat_idx = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)

        def splat(value, vty):
            v = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(i32, 0))
            return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), splat_idx)

        src = context.make_array(sig.args[0])(context, builder, vals).data
        x = builder.load(builder.bitcast(builder.gep(src, [base]), vf.as_pointer()), align=1)
        if kind == "gap":
            suffix = "f32" if fty == ir.FloatType() else "f64"
            fabs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vf, [vf]), f"llvm.fabs.v{LANES}{suffix}")
            mask = builder.fcmp_ordered("<", builder.call(fabs, [x]), splat(ref, vf))
        else:
            mask = builder.fcmp_unordered("!=", x, splat(ref, vf))
        lanes = builder.add(splat(builder.trunc(base, i32), vi), ir.Constant(vi, list(range(LANES))))
        compress = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vi, [vi, vb, vi]), f"llvm.experimental.vector.compress.v{LANES}i32"
        )
        packed = builder.call(compress, [lanes, mask, ir.Constant(vi, None)])
        dst = context.make_array(sig.args[3])(context, builder, out).data
        builder.store(packed, builder.bitcast(builder.gep(dst, [m]), vi.as_pointer()), align=1)
        ctpop = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(LANES), [ir.IntType(LANES)]), f"llvm.ctpop.i{LANES}"
        )
        count = builder.call(ctpop, [builder.bitcast(mask, ir.IntType(LANES))])
        return builder.zext(count, ir.IntType(64))

    return codegen


def _compress_typer(kind):
    def typer(typingctx, vals, base, ref, out, m):
        ok = (
            isinstance(vals, types.Array) and vals.ndim == 1 and vals.layout == "C"
            and vals.dtype in (types.float32, types.float64) and ref == vals.dtype
            and isinstance(out, types.Array) and out.ndim == 1 and out.layout == "C" and out.dtype == types.int32
            and isinstance(base, types.Integer) and isinstance(m, types.Integer)
        )
        if not ok:
            return None
        return types.int64(vals, types.int64, ref, out, types.int64), _compress_codegen(kind)

    return typer


_compress_nonzero = intrinsic(_compress_typer("nonzero"))
_compress_gap = intrinsic(_compress_typer("gap"))


def _prefetch_function(module):
    """The module's ``void spikerobust_prefetch_bytes(i8* p, i64 n)``: ``llvm.prefetch`` (read,
    all cache levels) of every 64-byte line of ``p[0:n]``. Kept out of line (``noinline``): a
    copy of this loop at each of the kernels' two dozen call sites doubled their compile time."""
    name = "spikerobust_prefetch_bytes"
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    i8p, i32, i64 = ir.IntType(8).as_pointer(), ir.IntType(32), ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i8p, i64]), name=name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    entry, loop, done = fn.append_basic_block("entry"), fn.append_basic_block("loop"), fn.append_basic_block("done")
    ptr, nbytes = fn.args
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", nbytes, ir.Constant(i64, 0)), loop, done)
    b = ir.IRBuilder(loop)
    off = b.phi(i64)
    off.add_incoming(ir.Constant(i64, 0), entry)
    prefetch = cgutils.get_or_insert_function(module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0")
    b.call(prefetch, [b.gep(ptr, [off]), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
    nxt = b.add(off, ir.Constant(i64, 64))
    off.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, nbytes), loop, done)
    ir.IRBuilder(done).ret_void()
    return fn


@intrinsic
def prefetch_row(typingctx, row):
    """Start loading every cache line of ``row`` (1-D, contiguous): a hint, with no effect on
    results and no fault on any address.

    The kernels walk their ``[T, B, N]`` traces one ``N``-long row per step and sample, rows
    ``B N`` elements apart: too far apart for the hardware prefetchers to follow, so without this
    each row's first lines were fetched from memory only when the step reached them. Asking for
    the next step's rows one step ahead measured 18 % off the forward kernel and 17-20 % off the
    backward kernel (fresh and trained layers at 10 % spikes, captured arguments); asking for the
    first four lines of each row only gained nothing."""
    if not (isinstance(row, types.Array) and row.ndim == 1 and row.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        nbytes = builder.mul(arr.nitems, arr.itemsize)
        data = builder.bitcast(arr.data, ir.IntType(8).as_pointer())
        builder.call(_prefetch_function(builder.module), [data, nbytes])
        return context.get_dummy_value()

    return types.none(row), codegen


@njit(cache=True, fastmath={"reassoc", "contract", "nsz"})
def dot2(r0, r1, vec, n, a0, a1):  # pragma: no cover - compiled
    """:func:`dot` of two rows with one vector, each load of ``vec`` serving both; LLVM
    vectorises each sum as it does :func:`dot`'s (the same bits). 17 % faster per dot product
    than two calls (masked product in isolation, 30 % support); four rows at a time did not
    vectorise (2x slower)."""
    for k in range(n):
        v = vec[k]
        a0 += r0[k] * v
        a1 += r1[k] * v
    return a0, a1


@njit(cache=True)
def scan(x, idx, ref, gap, vector):  # pragma: no cover - compiled
    """Write the indices ``k`` where ``x[k] != ref`` (``gap`` false: spikes, ``ref = 0``) or
    ``|x[k]| < ref`` (``gap`` true: the surrogate's support, ``ref = 1``) into ``idx`` (int32,
    ascending, at least as long as ``x``); return their count.

    With ``vector``, 16 entries per step (compare, compress, store; :data:`VECTOR_SCAN` says
    whether the host has the instructions for it); else, and for the last ``len(x) % 16``,
    branch-free one by one (every index is written, the count advances where the test holds): at
    the 10-30 % densities of spikes and surrogate supports a data-dependent branch is
    mispredicted often. Both ways give the same list.
    """
    n = x.shape[0]
    m = 0
    k = 0
    if vector:
        while k + LANES <= n:
            m += _compress_gap(x, k, ref, idx, m) if gap else _compress_nonzero(x, k, ref, idx, m)
            k += LANES
    while k < n:
        idx[m] = k
        m += (abs(x[k]) < ref) if gap else (x[k] != ref)
        k += 1
    return m


@njit(cache=True)
def support(d, idx, zero):  # pragma: no cover - compiled
    """:func:`scan` of the non-zero entries of ``d`` (spikes, or a derivative trace)."""
    return scan(d, idx, zero, False, VECTOR_SCAN)


@njit(cache=True)
def gap_support(s, idx, one):  # pragma: no cover - compiled
    """:func:`scan` of the surrogate's support ``|s| < 1`` of a gap trace."""
    return scan(s, idx, one, True, VECTOR_SCAN)


@njit(cache=True)
def spikes_and_gap_support(z, s, ev, idx, zero, one):  # pragma: no cover - compiled
    """:func:`support` of the spikes ``z`` into ``ev`` and :func:`gap_support` of ``s`` into
    ``idx`` in one pass; returns both counts. Not two :func:`scan` calls: one pass measured
    0.3 ms faster per backward pass with the vector scan and 0.4-0.6 ms with the scalar one
    (captured arguments, fresh and trained layers at 10 % spikes)."""
    n = z.shape[0]
    n_ev = 0
    m = 0
    k = 0
    if VECTOR_SCAN:
        while k + LANES <= n:
            n_ev += _compress_nonzero(z, k, zero, ev, n_ev)
            m += _compress_gap(s, k, one, idx, m)
            k += LANES
    while k < n:
        ev[n_ev] = k
        n_ev += z[k] != zero
        idx[m] = k
        m += abs(s[k]) < one
        k += 1
    return n_ev, m
