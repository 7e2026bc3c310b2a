"""ComfyUI after 0.33: the changes upstream sources show, simulated on the hosts this suite has.

Users run ComfyUI up to 0.45; no tree newer than 0.33.0 can be had here (see
../shared/notes/comfyui-host.md, "Checked on 2026-12-02"), but loose upstream files of later
releases show what is coming. Each change is simulated on 0.3.75 and 0.33.0 through ComfyUI's
public seams; a ComfyUI global is replaced only to play the newer host, with pytest's
monkeypatch, which puts it back.

1. q, k and v reach the attention functions wrapped in `AttentionTensorContainer`s. 0.33 has the
   class, and its `wrap_attn` unwraps them before it calls an `optimized_attention_override`
   unless the override has a `container_function` (ModelAttentionBackend forwards the one of the
   backend it installs); 0.33 itself passes containers only in MiniMax's blocks, a family the
   recorder does not map. Simulated by the Flux and Wan blocks' attention function (the
   `optimized_attention` name in their modules) wrapping q, k and v before it calls 0.33's own,
   and, for the UNet, by CrossAttention as the upstream file writes it (see 3). Skipped on 0.3.75:
   it has no such class and its `wrap_attn` could not unwrap one.
2. `wrap_attn` pops a `preferred_attention` keyword (a layer's own attention module) before it
   calls an override, so an override gets it or, on a host that does not pop it, gets it in its
   keyword arguments. Simulated on both hosts by the blocks' attention function adding it.
3. Every CrossAttention holds its own attention module (`comfy_attention`: a checkpoint's metadata
   can set its `function`, e.g. Comfy Kitchen's int8 attention) and passes it as
   `preferred_attention`; the module's function runs unless an override is installed. An attn2
   replace patch is still called with plain q, k, v and no module, so the recorder's patch,
   which computes the attention itself where no other patch is there, must call the layer's
   attention the way the layer would. Simulated by CrossAttention.forward as upstream writes it
   and an attention function that honours `preferred_attention`, on both hosts.
4. New sampler names (`cfgpp_ud10_ab`, a CFG++ sampler with a multistep history). The test that
   runs every sampler, test_step_attribution.py (iv), reads the host's own list; here a new
   k-diffusion sampler is registered on the host the way upstream adds one.
5. ComfyUI's inpainting wrapper calls the model's `scale_latent_inpaint` with `denoise_mask=`
   (0.33 does already). The pack never calls it: its dry run goes through the host's own
   KSAMPLER.sample, whose positional signature is unchanged upstream.
6. `requires-comfyui` has no upper bound: the Registry must not hide the pack from 0.34 to 0.45.

What no pack can fix through these seams: on a DiT whose layers carry their own attention
function, an installed override (the recorder's, ModelAttentionBackend's, any pack's) takes
precedence and `wrap_attn` drops the layer's module before it calls the override, so with the
recorder on, such a layer runs ComfyUI's global attention function instead of its own.
"""

import ast
import tomllib
from pathlib import Path
from types import SimpleNamespace

import comfy.k_diffusion.sampling
import comfy.ldm.flux.math
import comfy.ldm.wan.model
import comfy.samplers
import nodes
import pytest
import torch
from comfy.ldm.modules import attention as ldm_attention

import test_attention_recording as unet
import test_dit_attention as dit
import test_step_attribution as attribution
import third_party_samplers
from delayed_negative.attention.dit_hooks import observing_override
from delayed_negative.attention.dit_layout import TokenLayout
from delayed_negative.attention.record_model import record_attention
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler
from delayed_negative.samplers.ksampler import delayed_negative_ksampler
from delayed_negative.samplers.negative_window import NegativeTiming
from instrumented import instrument
from sigma_reference import assert_same_evaluations, stock_timestep_range_log
from devtools.models.tiny_dit_models import FAMILIES

PACK_ROOT = Path(__file__).resolve().parent.parent
CONTAINER = getattr(ldm_attention, "AttentionTensorContainer", None)
needs_containers = pytest.mark.skipif(CONTAINER is None, reason="ComfyUI 0.3.75 has no AttentionTensorContainer")
DIT_ATTENTION = {"flux": comfy.ldm.flux.math, "wan21": comfy.ldm.wan.model}  # where each block's function is named
OVERRIDE = "optimized_attention_override"


# --- 1, 2: the DiT recorder's attention override ------------------------------------------------

@pytest.fixture(scope="module", params=list(DIT_ATTENTION), ids=list(DIT_ATTENTION))
def family(request):
    """A joint-attention (Flux) and a cross-attention (Wan 2.1) DiT, as test_dit_attention builds them."""
    spec = FAMILIES[request.param]
    generator = torch.Generator().manual_seed(3)
    prompts = {name: spec.conditioning(generator) for name in ("positive", "negative", "empty")}
    return {"name": request.param, "model": spec.build(), "latent": {"samples": torch.zeros(spec.latent_shape)},
            **prompts}


def blocks_calling(family, monkeypatch, change_call) -> list:
    """The family's blocks call their attention function through `change_call(host_function, q, k, v,
    *args, **kwargs)`; returns the list each call appends to."""
    module = DIT_ATTENTION[family["name"]]
    host_function, calls = module.optimized_attention, []

    def attention(q, k, v, *args, **kwargs):
        calls.append(1)
        return change_call(host_function, q, k, v, *args, **kwargs)

    monkeypatch.setattr(module, "optimized_attention", attention)
    return calls


def in_containers(host_function, q, k, v, *args, **kwargs):
    return host_function(*(CONTAINER(tensor) for tensor in (q, k, v)), *args, **kwargs)


def assert_maps_exact(family, recording, model):
    """The recorded maps equal test_dit_attention's explicit softmax of the calls `model` makes."""
    clone, calls = dit.capture_attention(model)
    dit.sample(family, clone)
    latent = family["latent"]["samples"]
    frames = latent.shape[2] if latent.ndim == 5 else 1
    maps = recording.snapshot()
    reference = dit.reference_maps(family, calls, frames)
    assert len(reference) == 2 * dit.STEPS
    for (prompt, step), expected in reference.items():
        ids = [index for index, track in enumerate(maps.tracks) if track.prompt == prompt]
        torch.testing.assert_close(maps.maps[step, ids].double(), expected, rtol=1e-4, atol=1e-6,
                                   msg=f"{prompt} at step {step}")


@needs_containers
def test_dit_maps_stay_exact_and_the_image_unchanged_when_q_k_v_come_in_containers(family, monkeypatch):
    calls = blocks_calling(family, monkeypatch, in_containers)
    recording = dit.new_recording(family)
    recorded = dit.sample(family, record_attention(family["model"], recording))
    assert calls, "the simulated host never reached the blocks' attention"
    assert torch.equal(recorded, dit.sample(family, family["model"]))
    assert_maps_exact(family, recording, family["model"])


def backend_with_a_container_path(paths: list):
    """An attention backend as ModelAttentionBackend installs one (set_model_optimized_attention): a
    function for tensors and a `container_function` for containers (Comfy Kitchen's int8 attention
    frees q, k and v as it quantizes them); both compute ComfyUI's own attention, and say which ran."""
    def backend(q, k, v, *args, **kwargs):
        paths.append("tensors")
        return ldm_attention.optimized_attention(q, k, v, *args, **kwargs)

    def from_containers(q, k, v, *args, **kwargs):
        paths.append("containers")
        return ldm_attention.optimized_attention(q.take(), k.take(), v.take(), *args, **kwargs)

    backend.container_function = from_containers
    return backend


@needs_containers
def test_another_node_s_container_path_still_runs_under_the_recorder(family, monkeypatch):
    blocks_calling(family, monkeypatch, in_containers)
    paths = []
    other = family["model"].clone()
    other.set_model_optimized_attention(backend_with_a_container_path(paths))
    without_recorder = dit.sample(family, other)
    stock_paths, paths[:] = list(paths), []
    recording = dit.new_recording(family)
    recorded = dit.sample(family, record_attention(other, recording))
    assert set(stock_paths) == {"containers"} and paths == stock_paths
    assert torch.equal(recorded, without_recorder)
    assert_maps_exact(family, recording, family["model"])


NO_PREFERENCE = SimpleNamespace(function=None)  # a layer whose checkpoint asked for no attention of its own


def with_a_preference(host_function, q, k, v, *args, **kwargs):
    return host_function(q, k, v, *args, preferred_attention=NO_PREFERENCE, **kwargs)


def test_dit_recorder_passes_a_preferred_attention_it_is_given_on_untouched(family, monkeypatch):
    blocks_calling(family, monkeypatch, with_a_preference)
    seen = []
    other = family["model"].clone()  # another node's override, before the recorder: what reaches it

    def override(func, *args, **kwargs):
        seen.append(kwargs.get("preferred_attention", "missing"))
        return func(*args, **kwargs)

    other.model_options.setdefault("transformer_options", {})[OVERRIDE] = override
    without_recorder = dit.sample(family, other)
    stock_seen, seen[:] = list(seen), []
    recording = dit.new_recording(family)
    assert torch.equal(dit.sample(family, record_attention(other, recording)), without_recorder)
    assert seen == stock_seen and all(value is NO_PREFERENCE for value in seen)
    assert_maps_exact(family, recording, family["model"])


@pytest.mark.parametrize("given", [True, False], ids=["given", "popped by the host"])
@pytest.mark.parametrize("previous", [True, False], ids=["another override", "ComfyUI's function"])
def test_the_override_hands_on_exactly_the_keywords_it_got(given, previous):
    layout = TokenLayout(False, 0, 3, (1, 2, 2), (1, 4, 4))  # cross-attention: 4 image tokens, 3 text tokens
    received, observed = [], []

    def function(*args, **kwargs):
        received.append(("function", args, kwargs))
        return args[0] * 2

    def other(func, *args, **kwargs):
        received.append(("other", args, kwargs))
        return func(*args, **kwargs)

    override = observing_override(lambda call, _layout: observed.append(call), layout, other if previous else None)
    q, k = torch.randn(1, 4, 8), torch.randn(1, 3, 8)
    keywords = {"transformer_options": {"cond_or_uncond": [0]}}
    if given:
        keywords["preferred_attention"] = NO_PREFERENCE
    out = override(function, q, k, k, 2, **keywords)
    assert torch.equal(out, q * 2) and len(observed) == 1 and observed[0].queries.shape == (1, 2, 4, 4)
    assert [name for name, _args, _kwargs in received] == (["other", "function"] if previous else ["function"])
    for _name, args, kwargs in received:
        assert all(got is sent for got, sent in zip(args, (q, k, k, 2), strict=True)) and kwargs == keywords


# --- 1, 3: the UNet recorder's attn2 patch, layers holding their own attention -------------------

def future_cross_attention_forward(self, x, context=None, value=None, mask=None, transformer_options=None):
    """CrossAttention.forward as upstream writes it after 0.33: q, k, v in containers (where the host
    has the class) and the layer's own attention module passed as `preferred_attention`."""
    q = self.to_q(x)
    context = x if context is None else context
    k = self.to_k(context)
    v = self.to_v(context if value is None else value)
    if CONTAINER is not None:
        q, k, v = CONTAINER(q), CONTAINER(k), CONTAINER(v)
    attention = ldm_attention.optimized_attention if mask is None else ldm_attention.optimized_attention_masked
    masks = () if mask is None else (mask,)
    out = attention(q, k, v, self.heads, *masks, attn_precision=self.attn_precision,
                    preferred_attention=self.comfy_attention, transformer_options=transformer_options or {})
    return self.to_out(out)


def honouring_preferred_attention(host_function, counts: dict):
    """`host_function` as wrap_attn runs it after 0.33: `preferred_attention` popped, and its function
    run when no override is installed; counts the calls that came with containers."""
    def attention(*args, preferred_attention=None, **kwargs):
        counts["containers"] += CONTAINER is not None and isinstance(args[0], CONTAINER)
        options = kwargs.get("transformer_options") or {}
        function = getattr(preferred_attention, "function", None)
        if function is not None and OVERRIDE not in options and "_inside_attn_wrapper" not in kwargs:
            return function(*args, **kwargs)
        return host_function(*args, **kwargs)

    return attention


def lossy_layer_attention(counts: dict):
    """A layer's own attention function, as a checkpoint's metadata may ask for one (int8 in
    ComfyUI): ComfyUI's attention on q, k, v rounded to bfloat16, so that skipping it shows."""
    def lossy(q, k, v, heads, **kwargs):
        counts["layer"] += 1
        rounded = (tensor.to(torch.bfloat16).float() for tensor in (q, k, v))
        return ldm_attention.attention_basic(*rounded, heads, **kwargs)

    return ldm_attention.wrap_attn(lossy)


@pytest.fixture(params=["own function", "no function"])
def layers_with_their_own_attention(request, monkeypatch):
    """A small SD1.5 UNet on the simulated host: every CrossAttention holds an attention module."""
    model, counts = unet.single_resolution_sd15(), {"layer": 0, "containers": 0}
    function = lossy_layer_attention(counts) if request.param == "own function" else None
    for module in model.get_model_object("diffusion_model").modules():
        if isinstance(module, ldm_attention.CrossAttention):
            monkeypatch.setattr(module, "comfy_attention", SimpleNamespace(function=function), raising=False)
    monkeypatch.setattr(ldm_attention.CrossAttention, "forward", future_cross_attention_forward)
    for name in ("optimized_attention", "optimized_attention_masked"):
        monkeypatch.setattr(ldm_attention, name, honouring_preferred_attention(getattr(ldm_attention, name), counts))
    return model, counts, request.param


def test_unet_recorder_calls_each_layer_s_own_attention_as_the_layer_would(layers_with_their_own_attention):
    model, counts, kind = layers_with_their_own_attention
    prompts = unet.embeddings()
    without_recorder = unet.run(model, prompts)
    stock_counts = dict(counts)
    counts.update(layer=0, containers=0)
    recording, log = AttentionRecording(unet.COLUMNS, prompts["empty"]), []
    recorded_model = instrument(record_attention(model, recording), prompts, log)
    with unet.capture_queries_and_keys(recorded_model) as calls:
        recorded = unet.run(recorded_model, prompts)
    assert (stock_counts["layer"] > 0) == (kind == "own function")
    assert (stock_counts["containers"] > 0) == (CONTAINER is not None)
    assert counts == stock_counts
    assert torch.equal(recorded, without_recorder)
    assert_unet_maps_exact(recording.snapshot(), calls, log)


def assert_unet_maps_exact(maps, calls, log):
    """test_attention_recording's brute-force softmax of the q and k the layers computed (euler: one
    evaluation per step, cond and uncond batched)."""
    layers = len(calls) // len(log)
    assert layers >= 2 and len(log) == unet.STEPS
    for step, evaluation in enumerate(log):
        chunk_of = {"positive": evaluation.chunks.index(0), evaluation.uncond: evaluation.chunks.index(1)}
        for track, record in enumerate(maps.tracks):
            chunk = chunk_of.get(record.prompt)
            if chunk is None:
                assert torch.isnan(maps.maps[step, track]).all()
                continue
            columns = dict(unet.COLUMNS[record.prompt])[record.word]
            expected = sum(unet.brute_force(q[chunk:chunk + 1], k[chunk:chunk + 1], heads, columns)
                           for q, k, heads in calls[step * layers:(step + 1) * layers]) / layers
            torch.testing.assert_close(maps.maps[step, track, 0].double(), expected.reshape(8, 8), rtol=1e-5,
                                       atol=1e-7)


# --- 4: new sampler names -------------------------------------------------------------------------

NEW_SAMPLER = "cfgpp_ud10_ab"
SEED, CFG = 7, 5.0


@pytest.fixture(scope="module")
def tiny():
    generator = torch.Generator().manual_seed(0)
    prompts = {name: torch.randn(1, 77, 768, generator=generator) for name in ("positive", "negative", "empty")}
    return unet.single_resolution_sd15(), prompts  # one resolution level: a fraction of tiny_sd15's time


@pytest.fixture
def new_sampler(monkeypatch):
    """`cfgpp_ud10_ab` registered as upstream adds a k-diffusion sampler: a `sample_<name>` function
    in comfy.k_diffusion.sampling and the name in ComfyUI's lists."""
    if NEW_SAMPLER in comfy.samplers.KSampler.SAMPLERS:
        pytest.skip(f"this host has {NEW_SAMPLER}: test_step_attribution.py runs it with every other sampler")
    monkeypatch.setattr(comfy.k_diffusion.sampling, f"sample_{NEW_SAMPLER}", third_party_samplers.sample_cfgpp_history,
                        raising=False)
    monkeypatch.setattr(comfy.samplers, "KSAMPLER_NAMES", [*comfy.samplers.KSAMPLER_NAMES, NEW_SAMPLER])
    monkeypatch.setattr(comfy.samplers, "SAMPLER_NAMES", [*comfy.samplers.SAMPLER_NAMES, NEW_SAMPLER])
    monkeypatch.setattr(comfy.samplers.KSampler, "SAMPLERS", comfy.samplers.SAMPLER_NAMES)
    return NEW_SAMPLER


def test_the_every_sampler_tests_read_the_host_s_own_list():
    import test_guidance_schedule_steps

    assert attribution.SAMPLERS is comfy.samplers.KSampler.SAMPLERS
    assert set(test_guidance_schedule_steps.SAMPLERS) == set(comfy.samplers.KSampler.SAMPLERS) - attribution.OWN_GRID


def test_the_pack_names_no_sampler_in_its_code():
    # A table of known samplers would refuse or mis-time the next one; the step clock learns each.
    names, found = set(comfy.samplers.KSampler.SAMPLERS), []
    files = [*PACK_ROOT.glob("*.py"), *(file for folder in ("samplers", "attention", "nodes", "render")
                                        for file in (PACK_ROOT / folder).rglob("*.py"))]
    for file in files:
        found += [f"{file.relative_to(PACK_ROOT)}: {node.value!r}" for node in ast.walk(ast.parse(file.read_text()))
                  if isinstance(node, ast.Constant) and node.value in names]
    assert len(files) > 20 and not found


def test_a_new_sampler_is_offered_and_its_negative_switches_exactly_at_the_start_step(tiny, new_sampler, caplog):
    model, prompts = tiny
    options = next(i for i in DelayedNegativeKSampler.define_schema().inputs if i.id == "sampler_name").options
    assert new_sampler in options
    log = attribution.run(model, prompts, new_sampler, "karras")
    assert attribution.notices(caplog) == []  # its steps were learned, not guessed by sigma
    attribution.assert_switch_at_start(log, attribution.loop_steps(log))
    # One evaluation per step: ComfyUI's own timestep ranges make the same switch.
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    assert_same_evaluations(log, stock_timestep_range_log(model, prompts, new_sampler, "karras", attribution.STEPS,
                                                          attribution.START, SEED, CFG, latent))


def test_a_new_sampler_with_the_negative_from_step_0_is_bit_identical_to_the_stock_ksampler(tiny, new_sampler):
    model, prompts = tiny
    condition = attribution.conditioning(prompts)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    ours = delayed_negative_ksampler(model, SEED, attribution.STEPS, CFG, new_sampler, "karras", condition["positive"],
                                     condition["negative"], latent, NegativeTiming(0), condition["empty"])
    stock = nodes.KSampler().sample(model, SEED, attribution.STEPS, CFG, new_sampler, "karras", condition["positive"],
                                    condition["negative"], latent)[0]
    assert torch.equal(ours["samples"], stock["samples"])


# --- 5: inpainting, scale_latent_inpaint called by keyword ----------------------------------------

def test_inpainting_reaches_the_model_as_the_stock_ksampler_does_and_switches_exactly(tiny, monkeypatch, caplog):
    model, prompts = tiny
    base, received = model.model, []
    original = type(base).scale_latent_inpaint

    def by_keyword(*, sigma, noise, latent_image, **keywords):  # keyword-only: a positional call would fail
        received.append(tuple(sorted(keywords)))
        return original(base, sigma=sigma, noise=noise, latent_image=latent_image, **keywords)

    monkeypatch.setattr(base, "scale_latent_inpaint", by_keyword)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1.0
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)), "noise_mask": mask}
    condition, steps, start = attribution.conditioning(prompts), 4, 2

    def delayed(model, start):
        return delayed_negative_ksampler(model, SEED, steps, CFG, "heun", "karras", condition["positive"],
                                         condition["negative"], latent, NegativeTiming(start), condition["empty"])

    stock = nodes.KSampler().sample(model, SEED, steps, CFG, "heun", "karras", condition["positive"],
                                    condition["negative"], latent)[0]
    stock_received, received[:] = set(received), []
    assert torch.equal(delayed(model, 0)["samples"], stock["samples"])
    assert stock_received and set(received) == stock_received  # in the dry run and in the real run
    log = []
    delayed(instrument(model, prompts, log), start)
    assert attribution.notices(caplog) == []
    attribution.assert_switch_at_start(log, attribution.loop_steps(log), start)


# --- 6: the versions the Registry offers the pack to ----------------------------------------------

def test_requires_comfyui_has_the_pinned_floor_and_no_ceiling():
    stated = tomllib.loads((PACK_ROOT / "pyproject.toml").read_text())["tool"]["comfy"]["requires-comfyui"]
    assert stated == ">=0.3.75"
