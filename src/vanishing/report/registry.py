"""The registry of claims: the brief split into the claims this study tests, one entry each.

An entry holds everything about a claim that is typed once: its number, its short ``name``, its
title, the brief's words, the sub-grids it is judged on (the first of them the study has), its
figure (the tables the figure reads and the settings it shows side by side) and the comparison
families its rule reads. The rest is derived from it by name, as figures are:

- its judge is ``judge_<name>`` in ``report.claims`` (claims 1-6, the problem) or
  ``report.remedies`` (7-11, the remedies and theory), split as the figure modules are
  (``figures_claims`` and ``figures_remedies``);
- its figure is an entry of ``report.catalog`` built from this one (section "Claims", the claim's
  number and title, its sub-grids), drawn by ``plot_<figure>``;
- the activation families (``activation_vs_<a>`` for every saturating activation ``a``) come
  from the activation registry, as ``analysis.comparisons.FAMILIES`` does.

Light on purpose (no pandas): the Snakefile reads it through the catalog. Adding a claim is one
entry here, its judge, its plot function, its caption and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from vanishing.activations import SATURATING

ACTIVATION_FAMILIES = tuple(f"activation_vs_{a}" for a in SATURATING)
TIME_GRIDS = ("recurrent_profile", "recurrent")
TIME_TABLES = ("layer_gradients", "run_metrics")  # what the through-time figures read
TIME_VARIES = ("arch", "seq_len", "init", "sigma_w2")


@dataclass(frozen=True)
class ClaimSpec:
    number: int
    name: str  # judge_<name> judges it
    title: str
    quote: str  # the brief's words ("" for this study's own claim)
    grids: tuple[str, ...]  # sub-grids it is judged on and its figure draws, in preference
    figure: str  # plot_<figure> draws it
    tables: tuple[str, ...]  # what plot_<figure> takes, by table name
    families: tuple[str, ...] = ()  # comparison families its rule reads
    varies: tuple[str, ...] = ()  # settings besides the four axes its figure shows side by side

    @property
    def judge_name(self) -> str:
        return f"judge_{self.name}"


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(1, "decay", "Gradients shrink exponentially toward the lower layers",
              "when these gradients are propagated backward through each layer, they can "
              "become exponentially smaller", ("profile", "main"), "decay_shapes",
              ("run_metrics", "decay_fits")),
    ClaimSpec(2, "updates", "The lower layers' weights are updated very little or not at all",
              "the lower layers of the network receive very tiny gradients, which means their "
              "weights are updated very little or not at all", ("main",), "update_ledger",
              ("layer_gradients", "selected"), (*ACTIVATION_FAMILIES, "norm_vs_none")),
    ClaimSpec(3, "stagnation", "This leads to poor learning or stagnation",
              "This leads to poor learning or stagnation", ("main",), "layer_reset",
              ("selected",), ("deepest_vs_shallowest",)),
    ClaimSpec(4, "mechanism",
              "Sigmoid and tanh cause it, by squashing their inputs into a narrow range",
              "activation functions such as the sigmoid or hyperbolic tangent (tanh), which "
              "squashes input values into a narrow range, causing gradients to diminish as they "
              "propagate back", ("matched_init", "main"), "saturation_mechanism",
              ("theory", "selected"), ACTIVATION_FAMILIES, ("init",)),
    ClaimSpec(5, "hundreds", "With hundreds of layers the gradients shrink toward zero",
              "if hundreds of layers are present, the gradients can shrink toward zero, leading "
              "to ineffective learning", ("profile", "deep", "main"), "deep_profiles",
              ("layer_gradients",)),
    ClaimSpec(6, "relu", "ReLU does not saturate and keeps larger gradients",
              "activation functions like ReLU (Rectified Linear Unit), which do not saturate for "
              "positive inputs and help maintain larger gradients", ("matched_init", "main"),
              "activations_matched", ("selected",), ACTIVATION_FAMILIES, ("init",)),
    ClaimSpec(7, "stabilises", "Batch normalisation stabilises training",
              "batch normalization can stabilize ... training", ("main",), "lr_window",
              ("summary",), ("norm_vs_none",)),
    ClaimSpec(8, "accelerates", "Batch normalisation accelerates training",
              "batch normalization can ... accelerate training", ("main",), "steps_to_target",
              ("survival_curves",), ("norm_vs_none",)),
    ClaimSpec(9, "bn_flow", "Batch normalisation improves gradient flow",
              "by improving gradient flow through the network", ("main",), "bn_flow",
              ("layer_gradients", "selected"), ("norm_vs_none",)),
    ClaimSpec(10, "residual", "Residual shortcuts let gradients flow through very deep nets and "
              "help them learn", "shortcut connections that allow gradients to flow more easily "
              "back through the network, helping to improve learning in very deep models",
              ("deep", "main"), "residual_deep", ("selected",), ("residual_vs_plain",)),
    ClaimSpec(11, "theory", "Measured profiles at init match mean-field theory (this study's "
              "claim)", "", ("profile", "main"), "theory_slopes", ("theory",)),
    # through time (issue 18): recurrent nets, whose depth is time (report.claims_time)
    ClaimSpec(12, "time_decay", "Through time: the gradient to early steps falls exponentially "
              "in T", "In deep networks, when these gradients are propagated backward through "
              "each layer, they can become exponentially smaller", TIME_GRIDS, "time_profiles",
              TIME_TABLES, (), TIME_VARIES),
    ClaimSpec(13, "time_saturation", "Through time: tanh loses the gradient faster than ReLU at "
              "matched chi", "activation functions such as the sigmoid or hyperbolic tangent "
              "(tanh) ... causing gradients to diminish as they propagate back",
              TIME_GRIDS, "time_profiles", TIME_TABLES, (), TIME_VARIES),
    ClaimSpec(14, "time_gated", "Through time: gating (the recurrent shortcut) keeps the "
              "gradient and learns longer sequences", "shortcut connections that allow "
              "gradients to flow more easily back through the network", ("recurrent",),
              "time_training", TIME_TABLES, (), TIME_VARIES),
)  # fmt: skip
BY_NUMBER = {c.number: c for c in CLAIMS}


def shown_by(figure: str) -> tuple[int, ...]:
    """The numbers of the claims whose evidence ``figure`` shows (one figure may serve two)."""
    return tuple(c.number for c in CLAIMS if c.figure == figure)


def judge(spec: ClaimSpec):
    """A claim's rule: ``judge_<name>`` in ``report.claims`` (claims 1-6), ``report.remedies``
    (7-11) or ``report.claims_time`` (12-14, through time), bound by name as figures are
    (imported here, not at the top: the registry stays light for the Snakefile)."""
    from vanishing.report import claims, claims_time, remedies

    for module in (claims, remedies, claims_time):
        if hasattr(module, spec.judge_name):
            return getattr(module, spec.judge_name)
    raise KeyError(f"claim {spec.number} has no {spec.judge_name} function")
