//! The [`Footprint`] of a spec, computed from the layer table's shapes
//! without building (or allocating) anything proportional to the sizes.
//!
//! The parameter counts mirror the layer constructors (`Mlp::from_config`,
//! `Made::with_order`, the couplings' masks, `LuLinear::new`, …); a proptest
//! in `tests/resources.rs` checks them against built flows.

use normflow_dsl::{LayerSpec, Repeat};

use super::flow::CONDITIONED_LAYERS;
use super::flow::{DEFAULT_BINS, DEFAULT_UNITS};
use crate::nn::ConditionerConfig;
use crate::resources::{Footprint, add, mul};

/// Optional (overflow-aware) count.
type N = Option<u64>;

fn n(v: usize) -> N {
    u64::try_from(v).ok()
}

fn sum(values: &[N]) -> N {
    values
        .iter()
        .try_fold(0u64, |acc, v| acc.checked_add((*v)?))
}

/// The cost of one built layer.
#[derive(Clone, Copy)]
struct Cost {
    params: N,
    fixed: N,
    workspace: N,
    words: N,
    /// Scalars per sample alive while the layer runs.
    act: N,
}

impl Cost {
    fn free(act: N) -> Cost {
        Cost {
            params: Some(0),
            fixed: Some(0),
            workspace: Some(0),
            words: Some(0),
            act,
        }
    }
}

/// The shape of a conditioner network (`Mlp::from_config`) from `inputs` to
/// `outputs`: `(weights, biases, hidden layers)`.
fn net_shape(inputs: N, outputs: N, cfg: &ConditionerConfig) -> (N, N, N) {
    let h = n(cfg.hidden);
    let depth = n(cfg.depth);
    // Hidden layers of width h: `depth` of them, or for a residual network
    // an input layer and two per block.
    let hidden = if cfg.residual {
        add(mul(depth, Some(2)), Some(1))
    } else {
        depth
    };
    let weights = if hidden == Some(0) {
        mul(inputs, outputs)
    } else {
        // in → h, (hidden − 1) × (h → h), h → out.
        let between = mul(hidden.and_then(|k| k.checked_sub(1)), mul(h, h));
        sum(&[mul(inputs, h), between, mul(h, outputs)])
    };
    let biases = add(mul(hidden, h), outputs);
    (weights, biases, hidden)
}

/// A layer made of a conditioner network; `masked` for a MADE, whose masks
/// have the shape of its weights.
fn with_net(dim: N, inputs: N, outputs: N, cfg: &ConditionerConfig, masked: bool) -> Cost {
    let (weights, biases, hidden) = net_shape(inputs, outputs, cfg);
    // Every network layer's pre-activation, activation and gradient, with
    // the network's input and output and the layer's own vectors.
    let act = sum(&[
        inputs,
        mul(outputs, Some(2)),
        mul(mul(hidden, n(cfg.hidden)), Some(3)),
        mul(dim, Some(3)),
    ]);
    Cost {
        params: add(weights, biases),
        fixed: if masked { weights } else { Some(0) },
        workspace: Some(0),
        // The autoregressive order, or the coupling's index lists.
        words: mul(dim, Some(2)),
        act,
    }
}

/// The cost of one copy of layer `l` for `dim` coordinates; `flip` selects
/// the complementary coupling mask; `context` is the context dimension the
/// layer's conditioner takes (0 when it takes none).
fn layer_cost(l: &LayerSpec, dim: usize, context: usize, flip: bool) -> Cost {
    let d = n(dim);
    let cfg = super::flow::conditioner(l);
    let bins = super::flow::usize_opt(l, "bins", DEFAULT_BINS);
    let units = super::flow::usize_opt(l, "units", DEFAULT_UNITS);
    // 3K raw deep-sigmoidal parameters per coordinate.
    let naf_per_coord = mul(n(units), Some(3));
    // 3K − 1 raw spline parameters per transformed coordinate.
    let per_coord = mul(n(bins), Some(3)).and_then(|v| v.checked_sub(1));
    // `CouplingMask::half`: the second half is transformed, or the first
    // when flipped.
    let (ident, transformed) = if flip {
        (dim - dim / 2, dim / 2)
    } else {
        (dim / 2, dim - dim / 2)
    };
    let coupling_in = add(n(ident), n(context));
    let elementwise = Cost::free(mul(d, Some(2)));
    match l.name {
        "maf" | "iaf" => with_net(d, add(d, n(context)), mul(d, Some(2)), &cfg, true),
        "spline_ar" => with_net(d, add(d, n(context)), mul(d, per_coord), &cfg, true),
        "naf" => with_net(d, add(d, n(context)), mul(d, naf_per_coord), &cfg, true),
        "nice" => with_net(d, coupling_in, n(transformed), &cfg, false),
        "realnvp" => with_net(d, coupling_in, mul(n(transformed), Some(2)), &cfg, false),
        "spline_coupling" => with_net(d, coupling_in, mul(n(transformed), per_coord), &cfg, false),
        // (cos, sin) of each identity angle in; 3K raw parameters per angle out.
        "circular_spline" => {
            let inputs = add(mul(n(ident), Some(2)), n(context));
            let outputs = mul(n(transformed), mul(n(bins), Some(3)));
            with_net(d, inputs, outputs, &cfg, false)
        }
        // The masked block network: BlockNeuralAutoregressive::param_count.
        "bnaf" => {
            use crate::bijector::BlockNeuralAutoregressive as Bnaf;
            let blocks = super::flow::usize_opt(l, "blocks", super::flow::DEFAULT_BLOCKS);
            let units = Bnaf::<f64>::units_for(dim, cfg.hidden);
            let params = Bnaf::<f64>::param_count(dim, units, blocks, context).and_then(n);
            // Dense D·a × D·a weights of every layer for a call.
            let a = n(units);
            let square = mul(mul(d, d), mul(a, a));
            let hidden = mul(d, a);
            let layers = n(blocks);
            Cost {
                params,
                workspace: mul(add(square, mul(mul(d, d), a)), add(layers, Some(1))),
                // Pre-activations, activations and their gradients of every
                // hidden layer, and a few vectors.
                ..Cost::free(add(mul(mul(hidden, layers), Some(3)), mul(d, Some(6))))
            }
        }
        "planar" => Cost {
            params: add(mul(d, Some(2)), Some(1)),
            ..Cost::free(mul(d, Some(3)))
        },
        // m Householder vectors, R and R̃ (upper triangles) and b.
        "sylvester" => {
            let m = n(super::flow::usize_opt(l, "m", dim));
            Cost {
                // … and W (D × C) when conditioned.
                params: sum(&[mul(m, d), mul(d, add(d, Some(1))), d, mul(d, n(context))]),
                // Dense R and R̃ for a call.
                workspace: mul(mul(d, d), Some(2)),
                // The inputs of every reflection in both products, kept by
                // the backward pass, and a few vectors.
                ..Cost::free(mul(d, add(mul(m, Some(2)), Some(8))))
            }
        }
        "radial" => Cost {
            params: add(d, Some(2)),
            ..Cost::free(mul(d, Some(3)))
        },
        "batchnorm" => Cost {
            params: mul(d, Some(2)),
            // The running mean and variance.
            fixed: mul(d, Some(2)),
            ..Cost::free(mul(d, Some(4)))
        },
        "actnorm" => Cost {
            params: mul(d, Some(2)),
            ..Cost::free(mul(d, Some(3)))
        },
        "lu" => Cost {
            params: mul(d, add(d, Some(1))),
            // L, U and their product, plus a gradient's worth, D × D each.
            workspace: mul(mul(d, d), Some(4)),
            words: mul(d, Some(2)),
            ..Cost::free(mul(d, Some(4)))
        },
        "permute" | "reverse" => Cost {
            words: mul(d, Some(2)),
            ..elementwise
        },
        "exp" | "sigmoid" | "tanh" | "softplus" | "soft_clip" | "power" | "reciprocal"
        | "ordered" => elementwise,
        // A registered user layer: its parameters per coordinate.
        other => Cost {
            params: mul(d, n(super::registry::params_per_coord(other).unwrap_or(0))),
            ..elementwise
        },
    }
}

/// The footprint of `layers` built for `dim` coordinates, with a context of
/// `context_dim` dimensions for the conditioned layers (0: unconditional).
pub(super) fn footprint(layers: &[LayerSpec], dim: usize, context_dim: usize) -> Footprint {
    let d = n(dim);
    let mut total_layers = Some(0u64);
    let mut params = Some(0u64);
    let mut fixed = Some(0u64);
    let mut words = Some(0u64);
    let mut workspace = Some(0u64);
    let mut widest = Some(0u64);
    let mut train = Some(0u64);
    let reversal = Cost {
        words: mul(d, Some(2)),
        ..Cost::free(mul(d, Some(2)))
    };
    for l in layers {
        let context = if context_dim > 0 && CONDITIONED_LAYERS.contains(&l.name) {
            context_dim
        } else {
            0
        };
        let copies = n(l.count);
        // Copies 0, 2, 4, … use the mask as is, 1, 3, … the complement.
        let flipped = n(l.count / 2);
        let straight = n(l.count - l.count / 2);
        let reversals = if l.def().repeat == Repeat::Reverse {
            n(l.count.saturating_sub(1))
        } else {
            Some(0)
        };
        let mut parts = vec![(layer_cost(l, dim, context, false), straight)];
        if flipped != Some(0) {
            parts.push((layer_cost(l, dim, context, true), flipped));
        }
        if reversals != Some(0) {
            parts.push((reversal, reversals));
        }
        total_layers = sum(&[total_layers, copies, reversals]);
        for (cost, times) in parts {
            params = add(params, mul(cost.params, times));
            fixed = add(fixed, mul(cost.fixed, times));
            words = add(words, mul(cost.words, times));
            // One evaluation's workspace at a time.
            workspace = workspace.zip(cost.workspace).map(|(a, b)| a.max(b));
            widest = widest.zip(cost.act).map(|(a, b)| a.max(b));
            // A training pass keeps every layer's activations and gradients.
            train = add(train, mul(mul(cost.act, times), Some(2)));
        }
    }
    Footprint {
        dim: d.unwrap_or(u64::MAX),
        layers: total_layers,
        params,
        fixed_scalars: fixed,
        workspace,
        words,
        eval_per_sample: widest,
        train_per_sample: train,
    }
}

#[cfg(test)]
mod tests {
    use crate::FlowSpec;

    fn params(text: &str, dim: usize, context: usize) -> Option<u64> {
        FlowSpec::parse(text)
            .unwrap()
            .footprint(dim, context)
            .unwrap()
            .params()
    }

    #[test]
    fn counts_follow_the_constructors() {
        // MADE 2 → 4 → 4 → 4 (2 outputs per dimension): (2·4 + 4) + (4·4 + 4) + (4·4 + 4).
        assert_eq!(params("maf(hidden = 4)", 2, 0), Some(12 + 20 + 20));
        // Two copies and the reversal between them.
        let fp = FlowSpec::parse("maf(2, hidden = 4)")
            .unwrap()
            .footprint(2, 0)
            .unwrap();
        assert_eq!((fp.layers(), fp.params()), (Some(3), Some(104)));
        // Conditional: the context adds 3 inputs: (5·4 + 4) + 20 + 20.
        assert_eq!(params("maf(hidden = 4)", 2, 3), Some(24 + 20 + 20));
        // Not conditioned: the context changes nothing.
        assert_eq!(
            params("nice(hidden = 4, depth = 1)", 3, 5),
            Some((4 + 4) + (8 + 2))
        );
        // NAF: 3K outputs per dimension, K = 2: (2·4 + 4) + (4·4 + 4) + (4·12 + 12).
        assert_eq!(
            params("naf(hidden = 4, units = 2)", 2, 0),
            Some(12 + 20 + 60)
        );
        // LU: D(D + 1).
        assert_eq!(params("lu", 7, 0), Some(56));
        assert_eq!(params("planar >> radial >> actnorm", 3, 0), Some(7 + 5 + 6));
        // BNAF, D = 2, hidden 4 (2 units per coordinate), 2 blocks: the
        // layers 1 → 2, 2 → 2, 2 → 1 per block pair hold 3·(2, 4, 2) raw
        // entries (D(D+1)/2 = 3 block pairs) and 2·(4, 4, 2) scales and
        // biases; + 2 gates. With a context of 3: + D·a·3 = 12.
        assert_eq!(
            params("bnaf(hidden = 4)", 2, 0),
            Some(3 * (2 + 4 + 2) + 2 * (4 + 4 + 2) + 2)
        );
        assert_eq!(params("bnaf(hidden = 3, blocks = 2)", 2, 3), Some(46 + 12));
        // D = 1, 1 block of 5 units: (5 + 10) + (5 + 2) + 1.
        assert_eq!(params("bnaf(hidden = 5, blocks = 1)", 1, 0), Some(23));
        // Sylvester: mD + D(D + 1) + D, with m = D by default.
        assert_eq!(params("sylvester(m = 2)", 3, 0), Some(6 + 12 + 3));
        assert_eq!(params("sylvester", 3, 0), Some(9 + 12 + 3));
        // Circular spline, D = 3, K = 2: cos and sin of 1 angle in, 2·3K out:
        // (2·4 + 4) + (4·12 + 12); a 3-dimensional context adds 3 inputs.
        assert_eq!(
            params("circular_spline(hidden = 4, depth = 1, bins = 2)", 3, 0),
            Some(12 + 60)
        );
        assert_eq!(
            params("circular_spline(hidden = 4, depth = 1, bins = 2)", 3, 3),
            Some(24 + 60)
        );
        // Residual: 2 → 4, 2 blocks of 2 layers 4 → 4, 4 → 4.
        assert_eq!(
            params("maf(hidden = 4, depth = 2, residual = true)", 2, 0),
            Some(12 + 4 * 20 + 20)
        );
    }

    #[test]
    fn overflow_is_none_not_a_panic() {
        let fp =
            FlowSpec::parse("maf(hidden = 18446744073709551615, depth = 18446744073709551615)")
                .unwrap()
                .footprint(usize::MAX, usize::MAX)
                .unwrap();
        assert_eq!(fp.params(), None);
        assert_eq!(fp.model_bytes(8), None);
        assert_eq!(fp.training_bytes(1, 8), None);
    }
}
