"""The event-driven LSNN kernels against the reference path (autograd through ``lsnn_step_current``).

The reference backend is the independent second implementation: the event forward pass must
reproduce its spikes and traces bit for bit, and the compiled backward pass its gradients (to
1e-10 relative in float64, 1e-5 in float32) for every input that can require a gradient, over
spike rates from 0 to 50 %, refractory periods, per-neuron constants, ``dt != 1`` and ``T = 1``.
The kernels compile once per process (and are cached on disk), so the problems are small.
"""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("numba")

from spikerobust.functional import (  # noqa: E402
    ATan,
    FastSigmoid,
    LSNNParams,
    Triangle,
    from_snntorch,
    lsnn_unroll,
    time_mean,
)
from spikerobust.functional.lsnn_event import (  # noqa: E402
    event_unsupported_reason,
    lsnn_unroll_event,
    numba_available,
)
from spikerobust.functional.lsnn_fused import resolve_backend  # noqa: E402
from spikerobust.nn import LSNN  # noqa: E402

from lsnn_backend_cases import (  # noqa: E402  (shared with test_lsnn_fused.py)
    LEAF_NAMES,
    assert_close,
    assert_same_run,
    classifier,
    make_problem,
    run_backend,
)

T, B, D, N = 30, 11, 3, 20  # B = 11: more samples than backward chunks, unevenly split
RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}
SIZES = (T, B, D, N)
NAMES = LEAF_NAMES


def _problem(dtype, **kw):
    return make_problem(dtype, SIZES, **kw)


def _run(backend, problem, **kw):
    return run_backend(backend, problem, **kw)


def _assert_close(ref, got, dtype, what=""):
    assert_close(ref, got, RTOL[dtype], what)


def _assert_same_run(ref, got, dtype, *, nonzero=True):
    assert_same_run(ref, got, RTOL[dtype], nonzero=nonzero)


def test_event_backend_is_available_and_chosen_by_auto():
    assert numba_available()
    assert resolve_backend("auto", LSNNParams()) == "event"
    assert resolve_backend("event", LSNNParams()) == "event"
    assert resolve_backend("fused", LSNNParams()) == "fused"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n_refr,dt", [(0, 1.0), (1, 1.0), (2, 1.0), (5, 1.0), (2, 0.5)])
def test_event_matches_reference_forward_and_gradients(dtype, n_refr, dt):
    problem = _problem(dtype, n_refr=n_refr, dt=dt)
    ref = _run("reference", problem)
    z_ref, _, tr_ref, _ = ref
    rate = (z_ref * dt).mean().item()
    assert 0.02 < rate < 0.6, rate
    blocked = ((tr_ref.v > tr_ref.threshold) & (z_ref == 0)).sum().item()
    assert (blocked > 0) == (n_refr > 1), blocked  # n_refr = 1 blocks nothing beyond the spike step
    _assert_same_run(ref, _run("event", problem), dtype)
    assert torch.all(torch.diagonal(_run("event", problem)[3][2]) == 0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scale,low,high", [(0.01, 0.0, 0.0), (0.5, 0.01, 0.1), (2.0, 0.1, 0.3), (20.0, 0.35, 0.65)])
def test_event_matches_reference_across_spike_rates(dtype, scale, low, high):
    # n_refr = 0 so that rates up to 50 % and beyond are reachable
    problem = _problem(dtype, n_refr=0, scale=scale, seed=4)
    ref = _run("reference", problem)
    rate = ref[0].mean().item()
    assert low <= rate <= high, rate
    if rate == 0.0:  # silent network: the surrogate is still non-zero below threshold
        assert ref[3][1].abs().max() > 0
    _assert_same_run(ref, _run("event", problem), dtype, nonzero=rate > 0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("x_grad", [True, False])
def test_two_input_features_match_reference(dtype, x_grad):
    # d_in = 2 (ECG) has its own pass in the backward kernel (dL/dI_t and dL/dW_in together)
    problem = make_problem(dtype, (T, B, 2, N), scale=2.0, seed=5)
    x, leaves = problem[0], problem[5]
    if not x_grad:
        x.requires_grad_(False)
        problem = problem[:5] + (leaves[1:],) + problem[6:]
    ref = _run("reference", problem)
    assert 0.02 < ref[0].mean().item() < 0.6
    _assert_same_run(ref, _run("event", problem), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_single_time_step(dtype):
    problem = _problem(dtype, t_steps=1, scale=3.0, seed=2)
    ref = _run("reference", problem)
    assert ref[0].sum() > 0
    got = _run("event", problem)
    _assert_same_run(ref, got, dtype, nonzero=False)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_spike_mask_matches_reference(dtype):
    problem = _problem(dtype, seed=3)
    mask = (torch.rand(N, generator=torch.Generator().manual_seed(7)) >= 0.3).to(dtype)
    assert 0 < int(mask.sum()) < N
    ref = _run("reference", problem, spike_mask=mask)
    assert float(ref[0][..., mask == 0].abs().sum()) == 0.0
    _assert_same_run(ref, _run("event", problem, spike_mask=mask), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fractional_spike_mask_matches_reference(dtype):
    # a mask of other values than 0 and 1 scales the spikes and the surrogate's derivative: the
    # triangular surrogate's gap trace cannot encode that, the kernels' general path runs instead
    problem = _problem(dtype, seed=3)
    mask = torch.rand(N, generator=torch.Generator().manual_seed(8)).to(dtype)
    (z_ref, fin_ref, tr_ref, g_ref) = _run("reference", problem, spike_mask=mask)
    assert z_ref.unique().numel() > 2  # spikes of several heights
    z_got, fin_got, tr_got, g_got = _run("event", problem, spike_mask=mask)
    assert torch.equal(z_ref, z_got)
    # the membrane's reset by a fractional spike rounds differently from the reference's (by an
    # ulp; 0/1 masks, the documented case, give the same bits): traces equal to rounding
    for a, b in zip((*tr_ref, *fin_ref), (*tr_got, *fin_got)):
        _assert_close(a, b, dtype)
    for name, a, b in zip(NAMES, g_ref, g_got):
        assert a.abs().max() > 0, name
        _assert_close(a, b, dtype, name)


@pytest.mark.parametrize("surrogate", [FastSigmoid(10.0), ATan(2.0), Triangle(0.5)])
def test_other_surrogates(surrogate):
    problem = _problem(torch.float64, surrogate=surrogate, seed=3)
    _assert_same_run(_run("reference", problem), _run("event", problem), torch.float64)


def test_surrogate_without_derivative_raises_naming_reference():
    snn_surrogate = pytest.importorskip("snntorch.surrogate")
    wrapped = LSNNParams(surrogate=from_snntorch(snn_surrogate.fast_sigmoid()))
    with pytest.raises(ValueError, match="'reference'"):
        lsnn_unroll(torch.zeros(2, 1, 1), wrapped, torch.ones(1, 1), torch.zeros(1, 1), backend="event")
    with pytest.raises(ValueError, match="'reference'"):
        lsnn_unroll_event(torch.zeros(2, 1, 1), wrapped, torch.ones(1, 1), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="derivative"):
        LSNN(2, 4, backend="event", surrogate=snn_surrogate.atan())
    assert resolve_backend("auto", wrapped) == "reference"


def test_unsupported_inputs_fall_back_to_fused():
    p = LSNNParams(tau_mem=torch.full((2, 4), 20.0))  # per-sample constants: not [N]
    assert "tau_mem" in event_unsupported_reason(p, n=4)
    assert resolve_backend("event", p, n=4) == "fused"
    p64 = LSNNParams(tau_mem=torch.full((4,), 20.0, dtype=torch.float64))
    assert resolve_backend("event", p64, (torch.zeros(1, 1, 1),)) == "reference"  # mixed dtypes


def test_python_float_and_scalar_tensor_constants():
    g = torch.Generator().manual_seed(2)
    x = 2.0 * torch.randn(T, B, D, generator=g, dtype=torch.float64)
    w_in = torch.randn(D, N, generator=g, dtype=torch.float64).requires_grad_()
    w_rec = 0.4 * torch.randn(N, N, generator=g, dtype=torch.float64)  # no gradient
    res = {}
    for backend in ("reference", "event"):
        consts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (20.0, 98.0, 2.0, 0.01)]
        z, _, trace = lsnn_unroll(x, LSNNParams(*consts), w_in, w_rec, return_states=True, backend=backend)
        z_f, _, _ = lsnn_unroll(x, LSNNParams(), w_in, w_rec, backend=backend)  # Python floats
        res[backend] = (z, z_f, torch.autograd.grad(z.sum() + trace.v.sum() + (z_f.sum(1) ** 2).sum(), consts + [w_in]))
    assert torch.equal(res["reference"][0], res["event"][0])
    assert torch.equal(res["reference"][1], res["event"][1])
    for a, b in zip(res["reference"][2], res["event"][2]):
        assert a.shape == b.shape
        _assert_close(a, b, torch.float64)


@pytest.mark.parametrize("return_states", [False, True])
def test_no_grad_matches(return_states):
    x, w_in, w_rec, params, state, _, _ = _problem(torch.float32)
    with torch.no_grad():
        z_e, fin_e, tr_e = lsnn_unroll(x, params, w_in, w_rec, state, return_states=return_states, backend="event")
        z_r, fin_r, tr_r = lsnn_unroll(x, params, w_in, w_rec, state, return_states=return_states)
    assert z_e.grad_fn is None
    assert torch.equal(z_e, z_r)
    for a, b in zip((*fin_e, *(tr_e or ())), (*fin_r, *(tr_r or ()))):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scale,n_refr,dt,masked", [(0.5, 2, 1.0, False), (2.0, 0, 1.0, True), (20.0, 0, 1.0, False),
                                                    (2.0, 2, 0.5, True)])
def test_no_grad_matches_across_rates_steps_and_masks(dtype, scale, n_refr, dt, masked):
    # the no-grad kernel writes the spikes over its own currents x @ W_in: still the reference's bits
    x, w_in, w_rec, params, state, _, _ = _problem(dtype, scale=scale, n_refr=n_refr, dt=dt, seed=9)
    mask = (torch.rand(N, generator=torch.Generator().manual_seed(1)) >= 0.3).to(dtype) if masked else None
    x_before, w_before = x.detach().clone(), w_in.detach().clone()
    with torch.no_grad():
        z_e, fin_e, _ = lsnn_unroll(x, params, w_in, w_rec, state, backend="event", spike_mask=mask)
        z_r, fin_r, _ = lsnn_unroll(x, params, w_in, w_rec, state, spike_mask=mask)
    assert 0.0 < (z_r * dt).mean().item() < 0.7
    assert torch.equal(z_e, z_r)
    for a, b in zip(fin_e, fin_r):
        assert torch.equal(a, b)
    assert torch.equal(x, x_before) and torch.equal(w_in, w_before)  # inputs untouched


def _large_allocations(fn, n_bytes):
    """Number of CPU allocations of at least ``n_bytes`` that ``fn`` makes (torch's allocator)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(1 for e in prof.events() if e.self_cpu_memory_usage >= n_bytes)


def test_no_grad_pass_allocates_one_time_by_neuron_tensor():
    # the spikes are the only [T, B, N] tensor of a no-grad pass; the counter does see the others
    # (the fused loop's x @ W_in and spikes, the traces the backward pass reads)
    x, w_in, w_rec, params, state, _, _ = _problem(torch.float32, seed=9)
    size = T * B * N * 4

    def run(backend):
        return lambda: lsnn_unroll(x, params, w_in, w_rec, state, backend=backend)

    with torch.no_grad():
        assert _large_allocations(run("event"), size) == 1
        assert _large_allocations(run("fused"), size) >= 2
    assert _large_allocations(run("event"), size) > 2


def test_entry_points_take_the_arguments_of_lsnn_unroll():
    import inspect

    from spikerobust.functional.lsnn_fused import lsnn_unroll_fused

    want = [(p.name, p.kind, p.default) for p in inspect.signature(lsnn_unroll).parameters.values()
            if p.name != "backend"]
    for fn, module in ((lsnn_unroll_event, "lsnn_event"), (lsnn_unroll_fused, "lsnn_fused")):
        got = [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]
        assert got == want
        assert fn.__module__ == f"spikerobust.functional.{module}"
        assert "Returns:" in fn.__doc__ and "Examples:" in fn.__doc__


def test_gradients_without_traces_and_only_some_leaves():
    x, w_in, w_rec, params, state, _, weights = _problem(torch.float64, state_grad=False, seed=6)
    res = {}
    for backend in ("reference", "event"):
        z, final, _ = lsnn_unroll(x, params, w_in, w_rec, state, backend=backend)
        loss = (z * weights).sum() + final.v.sum() + final.b.sum()
        res[backend] = torch.autograd.grad(loss, [w_rec, params.b0])
    for a, b in zip(res["reference"], res["event"]):
        _assert_close(a, b, torch.float64)


def _run_on_one_and_two_threads(problem):
    """The event backend's :func:`_run` of ``problem`` on one thread, then on two."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run("event", problem)
        torch.set_num_threads(2)
        two = _run("event", problem)
    finally:
        torch.set_num_threads(before)
    return one, two


def test_same_bits_for_one_and_two_threads():
    one, two = _run_on_one_and_two_threads(_problem(torch.float32, seed=8))
    assert torch.equal(one[0], two[0])
    for a, b in zip(one[3], two[3]):
        assert torch.equal(a, b)


def test_frozen_recurrent_weights_split_the_batch_like_any_pass():
    # with W_rec needing no gradient the backward pass now splits the batch into its fixed chunks
    # too (it used to run as one chunk, on one thread): still the same bits on one and two
    # threads, and the remaining gradients (inputs, W_in, constants, state) those of the reference
    x, w_in, w_rec, params, state, leaves, weights = _problem(torch.float64, seed=21)
    leaves = [t for t in leaves if t is not w_rec]
    problem = (x, w_in, w_rec.detach(), params, state, leaves, weights)
    one, two = _run_on_one_and_two_threads(problem)
    ref = _run("reference", problem)
    assert torch.equal(one[0], two[0]) and torch.equal(one[0], ref[0])
    for a, b, r in zip(one[3], two[3], ref[3]):
        assert torch.equal(a, b)
        _assert_close(r, a, torch.float64)


def _classifier(backend):
    return classifier(backend, SIZES)


def test_trained_network_gradients_match_reference():
    """After some training (weights no longer random), gradients still agree with the reference."""
    g = torch.Generator().manual_seed(11)
    x = 2.0 * torch.randn(T, 16, D, generator=g, dtype=torch.float64)
    y = (x[:, :, 0].mean(0) > 0).long()  # a learnable label
    model = _classifier("event")
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(15):
        opt.zero_grad()
        logits, reg = model(x, return_aux_loss=True)
        (torch.nn.functional.cross_entropy(logits, y) + reg).backward()
        opt.step()
    res = {}
    for backend in ("reference", "event"):
        model.lsnn.backend = backend
        model.zero_grad()
        logits, reg = model(x, return_aux_loss=True)
        (torch.nn.functional.cross_entropy(logits, y) + reg).backward()
        res[backend] = {k: p.grad.clone() for k, p in model.named_parameters()}
    with torch.no_grad():
        assert 0.0 < float(model.lsnn(x).mean()) < 0.5
    for name, ref in res["reference"].items():
        assert ref.abs().max() > 0, name
        _assert_close(ref, res["event"][name], torch.float64, name)


def test_a_launch_leaves_torch_thread_count_alone():
    # numba's OpenMP threading layer shares the runtime with PyTorch and used to reset this
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        x, w_in, w_rec, params, state, _, _ = _problem(torch.float32)
        z, _, _ = lsnn_unroll(x, params, w_in, w_rec, state, backend="event")
        z.sum().backward()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif("NUMBA_THREADING_LAYER" in os.environ, reason="threading layer chosen by the environment")
def test_kernels_share_torchs_openmp_runtime():
    # a separate numba pool competes with torch's spinning OpenMP threads: two threads were no
    # faster than one (bench_robust_step.py --thread-sweep 1,2); on torch's runtime they are
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        pytest.skip("this torch build does not use OpenMP")
    import numba

    x, w_in, w_rec, params, state, _, _ = _problem(torch.float32)
    lsnn_unroll(x, params, w_in, w_rec, state, backend="event")
    assert numba.threading_layer() == "omp"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t_steps", [1, T])
def test_gradient_broadcast_over_time(dtype, t_steps):
    # a time average's gradient reaches the spikes as one [B, N] gradient broadcast over time
    # (stride 0), which the event kernel reads once per step instead of a [T, B, N] tensor
    x, w_in, w_rec, params, state, leaves, weights = _problem(dtype, t_steps=t_steps)
    res = {}
    for backend in ("reference", "event"):
        z, _, _ = lsnn_unroll(x, params, w_in, w_rec, state, backend=backend)
        rates = time_mean(z)
        assert torch.equal(rates, z.mean(dim=0))
        res[backend] = torch.autograd.grad((rates * weights[0]).sum() + (rates ** 2).sum(), leaves)
    for a, b in zip(res["reference"], res["event"]):
        _assert_close(a, b, dtype)
    assert any(g.abs().max() > 0 for g in res["event"][:3])


def _fixed_constants(params: LSNNParams) -> LSNNParams:
    return params._replace(**{k: getattr(params, k).detach() for k in ("tau_mem", "tau_adapt", "beta_adapt", "b0")})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t_steps", [1, 2, T])
def test_adaptation_trace_recomputed_by_the_backward_kernel(dtype, t_steps):
    # With constants that need no gradient the forward kernel does not keep the trace of b and
    # the backward kernel recomputes it from the initial state and the spikes: against the
    # reference, and the same bits as when the trace is recorded (which a gradient for
    # beta_adapt asks for), since the recomputation repeats the forward kernel's operations
    x, w_in, w_rec, params, state, _, weights = _problem(dtype, t_steps=t_steps, scale=3.0, seed=4)
    fixed = _fixed_constants(params)
    leaves = [x, w_in, w_rec, *state[:3]]
    res = {}
    for label, backend, p in (("reference", "reference", fixed), ("recomputed", "event", fixed),
                              ("recorded", "event", fixed._replace(beta_adapt=params.beta_adapt))):
        z, final, _ = lsnn_unroll(x, p, w_in, w_rec, state, backend=backend)
        loss = (z * weights).sum() + final.v.sum() - 0.7 * final.b.sum()
        res[label] = torch.autograd.grad(loss, leaves)
    for a, b in zip(res["reference"], res["recomputed"]):
        _assert_close(a, b, dtype)
    for a, b in zip(res["recorded"], res["recomputed"]):
        assert torch.equal(a, b)
    assert res["recomputed"][2].abs().max() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [3.0, 20.0])
def test_wide_and_narrow_supports_in_one_pass(dtype, scale):
    # With constants that need no gradient the backward kernel takes one vectorised pass over all
    # neurons at a step whose surrogate support holds more than 1/8 of them, and the indexed loop
    # elsewhere: a pass that has both kinds of steps must match the reference, and the outer
    # gradient of the final state must pass through too
    from spikerobust.functional import _lsnn_event_kernels as kern

    x, w_in, w_rec, params, state, _, weights = _problem(dtype, n_refr=0, scale=scale, seed=6)
    fixed = _fixed_constants(params)
    leaves = [x, w_in, w_rec, *state[:3]]
    res = {}
    for backend in ("reference", "event"):
        z, final, trace = lsnn_unroll(x, fixed, w_in, w_rec, state, return_states=True, backend=backend)
        loss = (z * weights).sum() + final.v.sum() - 0.7 * final.b.sum()
        res[backend] = torch.autograd.grad(loss, leaves)
        if backend == "reference":
            gap = (trace.v - trace.threshold) / trace.threshold
            wide = ((gap.abs() < 1).sum(-1) * kern._DENSE_SUPPORT > N)[:-1]  # steps 0..T-2 (S_{t-1})
    assert wide.any() and not wide.all(), wide.double().mean()
    for a, b in zip(res["reference"], res["event"]):
        _assert_close(a, b, dtype)
    assert res["event"][2].abs().max() > 0


def _blocked_sum(z, w, kb):
    """z @ w for 0/1 ``z``: each block of ``kb`` rows of ``w`` added one by one from zero in
    ascending order, the blocks' sums added in order (a plain torch loop)."""
    n = w.shape[0]
    total = None
    for lo in range(0, n, kb):
        part = torch.zeros(z.shape[0], w.shape[1], dtype=w.dtype)
        for k in range(lo, min(lo + kb, n)):
            part = torch.where((z[:, k] != 0)[:, None], part + w[k], part)
        total = part if total is None else total + part
    return total


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_recurrent_current_sums_block_by_block(dtype):
    # the forward kernel's z @ W_rec in blocks of kb neurons (the order a BLAS may use), against
    # the same order written as a plain loop, for block sizes that divide N and that do not
    from spikerobust.functional import _lsnn_event_kernels as kern

    g = torch.Generator().manual_seed(8)
    for n in (1, 37, 64, 130):
        w = torch.randn(n, n, dtype=dtype, generator=g)
        z = (torch.rand(6, n, generator=g) < 0.4).to(dtype)
        for kb in sorted({1, 3, 16, 32, n // 2 or 1, n - 1 or 1, n}):
            got = torch.empty(6, n, dtype=dtype)
            kern.recurrent_rows(z.numpy(), w.numpy(), kb, got.numpy())
            assert torch.equal(got, _blocked_sum(z, w, kb)), (n, kb)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spikes_and_traces_bit_identical_at_the_ecg_size(dtype):
    # N = 256, B = 100: where MKL's float32 product sums over two blocks of 128 on this project's
    # machines; the block size found at run time must give the reference's traces bit for bit
    import spikerobust.functional.lsnn_event as le

    kb = le._recurrent_block(100, 256, dtype)
    if kb == 0:
        pytest.skip("this machine's BLAS sums [100, 256] @ [256, 256] in an order the kernel does not model")
    problem = make_problem(dtype, (20, 100, 2, 256), n_refr=2, scale=1.5, seed=9)
    _assert_same_run(_run("reference", problem), _run("event", problem), dtype)


@pytest.mark.parametrize("batch", [5, 11, 100])
def test_block_order_is_the_one_thread_order_for_any_thread_count(batch):
    # torch's product may sum in another order on two threads (MKL does for [5, 256] @ [256, 256]
    # and [11, 256] @ [256, 256] on this project's machines); the event backend keeps the order
    # found on one thread, so its spikes and traces are the same bits on one thread and on two
    import warnings

    problem = make_problem(torch.float32, (12, batch, 2, 256), n_refr=2, scale=1.5, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the two-thread order may differ: said, not tested
        one, two = _run_on_one_and_two_threads(problem)
    assert torch.equal(one[0], two[0])
    for a, b in zip((*one[2], *one[1]), (*two[2], *two[1])):
        assert torch.equal(a, b)
    for a, b in zip(one[3], two[3]):
        assert torch.equal(a, b)


def test_an_order_no_block_size_reproduces_warns_and_still_runs(monkeypatch):
    import spikerobust.functional.lsnn_event as le

    monkeypatch.setattr(le, "_block_candidates", lambda n: [])
    le._recurrent_block.cache_clear()
    le._block_for.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match=r"no block order .* \[11, 20\] @ \[20, 20\]"):
            assert le._block_for(11, 20, torch.float32, torch.get_num_threads()) == 0
        problem = _problem(torch.float32, scale=3.0, seed=12)
        ref, got = _run("reference", problem), _run("event", problem)  # (the plain ascending sum)
        _assert_same_run(ref, got, torch.float32)  # at N = 20 that is MKL's order anyway
    finally:
        monkeypatch.undo()
        le._recurrent_block.cache_clear()
        le._block_for.cache_clear()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_spike_rows_sum_like_one_spike_at_a_time(dtype):
    # dL/dW_rec is summed after each sample's reverse-time loop, neuron by neuron, four steps per
    # pass over the row; every element must get the multiply-adds of adding each spike's row as
    # its step is reached (steps descending), compiled here as a plain loop; and, as a sum, the
    # product Z^T G in float64
    import numpy as np
    from numba import njit

    from spikerobust.functional import _lsnn_event_kernels as kern

    @njit(fastmath={"contract"})
    def one_at_a_time(gw, z, g):
        for t in range(z.shape[0] - 1, -1, -1):
            for j in range(z.shape[1]):
                if z[t, j] != 0:
                    for k in range(gw.shape[1]):
                        gw[j, k] += z[t, j] * g[t, k]

    rng = np.random.default_rng(2)
    t_steps, n = 23, 37
    for rate in (0.0, 0.05, 0.3, 0.9):
        z = (rng.random((t_steps, n)) < rate) * rng.choice([1.0, 0.5], (t_steps, n))  # masked values too
        z = z.astype(dtype)
        g = rng.standard_normal((t_steps, n)).astype(dtype)
        start = rng.standard_normal((n, n)).astype(dtype)
        # the kernel's layout: step t's list of spiking neurons from ev_off[t], steps from T-1 down
        evflat = np.zeros(t_steps * n + 16, np.int32)
        zflat = np.zeros(t_steps * n, dtype)
        ev_off = np.zeros(t_steps + 1, np.int64)
        off = 0
        for t in range(t_steps - 1, -1, -1):
            js = np.flatnonzero(z[t])
            ev_off[t] = off
            evflat[off:off + js.size] = js
            zflat[off:off + js.size] = z[t, js]
            off += js.size
        got, want = start.copy(), start.copy()
        kern._add_spike_rows(got, evflat, ev_off, off, g, zflat, np.empty(n + 1, np.int64),
                             np.empty(t_steps * n, np.int32), np.empty(t_steps * n, dtype))
        one_at_a_time(want, z, g)
        assert np.array_equal(got, want), rate
        exact = start.astype(np.float64) + z.T.astype(np.float64) @ g.astype(np.float64)
        assert np.allclose(got, exact, rtol=1e-5, atol=1e-5 * (1 + np.abs(exact).max())), rate


@pytest.mark.parametrize("x_grad,w_in_grad", [(False, True), (True, False), (True, True)])
def test_input_projection_gradients(x_grad, w_in_grad):
    # the event backend differentiates x @ W_in itself: dL/dW_in summed in the kernel, dL/dI
    # written only when x needs a gradient
    x, w_in, w_rec, params, state, _, weights = _problem(torch.float64, state_grad=False)
    res = {}
    for backend in ("reference", "event"):
        xx = x.detach().clone().requires_grad_(x_grad)
        ww = w_in.detach().clone().requires_grad_(w_in_grad)
        z, _, _ = lsnn_unroll(xx, params, ww, w_rec, state, backend=backend)
        leaves = [t for t in (xx, ww, w_rec) if t.requires_grad]
        res[backend] = torch.autograd.grad((z * weights).sum(), leaves)
    for a, b in zip(res["reference"], res["event"]):
        assert a.abs().max() > 0
        _assert_close(a, b, torch.float64)


def _forked_child(queue, x, w_in, w_rec):
    from spikerobust.functional.lsnn_fused import resolve_backend

    torch.set_num_threads(1)
    z, _, _ = lsnn_unroll(x, LSNNParams(), w_in, w_rec, backend="event")
    queue.put((resolve_backend("event", LSNNParams(), (x,), n=w_rec.shape[0]), z.tolist()))  # plain data


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_process_falls_back_to_fused_instead_of_dying():
    # numba terminates a child forked from a process that started its OpenMP layer, at the
    # child's first parallel launch; such a child runs the fused backend (same spikes)
    import multiprocessing as mp

    import numba

    x, w_in, w_rec = 1.5 * torch.randn(20, 3, 2), torch.randn(2, 12), 0.4 * torch.randn(12, 12)
    z_ref, _, _ = lsnn_unroll(x, LSNNParams(), w_in, w_rec, backend="reference")
    lsnn_unroll(x, LSNNParams(), w_in, w_rec, backend="event")  # the kernels have run here
    if numba.threading_layer() != "omp":
        pytest.skip("the kernels do not run on OpenMP here")
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_forked_child, args=(queue, x, w_in, w_rec))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, f"the forked child ended with exit code {child.exitcode}"
    backend, z = queue.get(timeout=10)
    assert backend == "fused"
    assert torch.equal(torch.tensor(z), z_ref)


@pytest.fixture
def projection_calls(monkeypatch):
    """The row shapes the projection kernel is called with during the test (its check's cache is
    emptied before and after, so that the check's own call is recorded too)."""
    import spikerobust.functional.lsnn_event as le

    kernels = le._kernels()
    calls = []
    exact = kernels.project_rows

    def spy(x, w, out):
        calls.append(x.shape)
        exact(x, w, out)

    monkeypatch.setattr(kernels, "project_rows", spy)
    le._projection_reproduces_torch.cache_clear()
    yield calls
    monkeypatch.undo()
    le._projection_reproduces_torch.cache_clear()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d_in", [1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_input_projection_has_torchs_bits(dtype, d_in, projection_calls):
    # the event backend's x @ w_in is torch's, bit for bit, whichever way it is computed: by the
    # compiled kernel where it reproduced torch's product for the shape (narrow inputs), else by torch
    import spikerobust.functional.lsnn_event as le

    g = torch.Generator().manual_seed(d_in)
    x = torch.randn(17, 13, d_in, dtype=dtype, generator=g)
    w_in = torch.randn(d_in, 37, dtype=dtype, generator=g)
    got = le.project(x, w_in)
    assert got.shape == (17, 13, 37) and got.dtype == dtype
    assert torch.equal(got, x @ w_in)
    kernel_used = d_in <= le.PROJECT_MAX_D_IN and le._projection_reproduces_torch(17 * 13, d_in, 37, dtype,
                                                                                    torch.get_num_threads())
    # the check runs the kernel once on random data; the projection itself once more where it holds
    assert len(projection_calls) == (0 if d_in > le.PROJECT_MAX_D_IN else 1 + int(kernel_used))
    assert not x.requires_grad and not got.requires_grad


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_projection_kernel_sums_like_one_pass_per_feature(dtype):
    # the kernel takes up to four input features per pass over a row; every element must still get
    # the chain of multiply-adds of one pass per feature (from zero, ascending): compared with that
    # plain loop, compiled here, for every remainder of d_in modulo four
    import numpy as np
    from numba import njit

    import spikerobust.functional.lsnn_event as le

    @njit(fastmath={"contract"})
    def one_pass_per_feature(x, w_in, out):
        for r in range(x.shape[0]):
            for k in range(out.shape[1]):
                out[r, k] = 0
            for i in range(x.shape[1]):
                xi = x[r, i]
                for k in range(out.shape[1]):
                    out[r, k] = out[r, k] + xi * w_in[i, k]

    rng = np.random.default_rng(3)
    for d_in in range(1, 13):
        x = rng.standard_normal((23, d_in)).astype(dtype)
        w_in = rng.standard_normal((d_in, 37)).astype(dtype)
        want, got = np.empty((23, 37), dtype), np.empty((23, 37), dtype)
        one_pass_per_feature(x, w_in, want)
        le._launch(le._kernels().project_rows, x, w_in, got)
        assert np.array_equal(got, want), d_in


def test_input_projection_falls_back_to_torch_where_the_kernel_would_differ(monkeypatch):
    # a kernel that summed in another order than the machine's BLAS would differ in the last bit
    # somewhere: the check must catch it, and the event backend then keeps torch's product (spikes
    # stay the reference's)
    import spikerobust.functional.lsnn_event as le

    kernels = le._kernels()
    exact = kernels.project_rows

    def off_by_one_ulp(x, w, out):
        exact(x, w, out)
        out[0, 0] = float(torch.nextafter(torch.tensor(out[0, 0]), torch.tensor(float("inf"))))

    monkeypatch.setattr(kernels, "project_rows", off_by_one_ulp)
    le._projection_reproduces_torch.cache_clear()
    try:
        x, w_in = torch.randn(7, 5, 3), torch.randn(3, 16)
        assert not le._projection_reproduces_torch(35, 3, 16, torch.float32, torch.get_num_threads())
        assert torch.equal(le.project(x, w_in), x @ w_in)
        problem = _problem(torch.float32, scale=3.0, seed=12)
        _assert_same_run(_run("reference", problem), _run("event", problem), torch.float32)
    finally:
        monkeypatch.undo()
        le._projection_reproduces_torch.cache_clear()


def test_input_projection_keeps_torchs_product_for_layouts_the_check_did_not_see(projection_calls):
    # the check runs on contiguous, 64-byte aligned operands; a transposed W_in or an x that starts
    # off that alignment could take another BLAS path, so torch computes those (same bits as ever)
    import spikerobust.functional.lsnn_event as le

    big = torch.randn(1 + 20 * 6 * 2)
    x_off = big[1:].view(20, 6, 2)  # contiguous, 4 bytes past an aligned start
    assert x_off.is_contiguous() and x_off.data_ptr() % 64 != 0
    w_t = torch.randn(16, 2).t()  # [2, 16], not contiguous
    w_in = torch.randn(2, 16)
    for x, w in ((x_off, w_in), (torch.randn(20, 6, 2), w_t), (torch.randn(6, 20, 2).transpose(0, 1), w_in)):
        projection_calls.clear()
        assert torch.equal(le.project(x, w), x @ w)
        assert projection_calls == []
