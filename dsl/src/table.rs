//! The table of layers, their keys and defaults.

use crate::Value;

/// The type and range of a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// An integer ≥ 1 (`hidden`, `depth`, `bins`, `units`).
    PositiveInt,
    /// A finite number > 0 (`bound`); integers are accepted.
    PositiveFloat,
    /// `true` or `false`.
    Bool,
    /// One of `relu`, `tanh`, `elu`.
    Activation,
    /// Any finite number (`low`, `high`, `p`); integers are accepted.
    Float,
}

/// The activation names the DSL accepts.
pub const ACTIVATIONS: &[&str] = &["relu", "tanh", "elu"];

impl ValueKind {
    /// What a value of this kind looks like, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            ValueKind::PositiveInt => "an integer of at least 1",
            ValueKind::PositiveFloat => "a number greater than 0",
            ValueKind::Bool => "`true` or `false`",
            ValueKind::Activation => "one of `relu`, `tanh`, `elu`",
            ValueKind::Float => "a finite number",
        }
    }

    /// Checks `v` and normalises it (an integer for a decimal key becomes a
    /// decimal). On error: a message and an optional suggestion.
    pub fn check(self, v: &Value) -> Result<Value, (String, Option<String>)> {
        match (self, v) {
            (ValueKind::PositiveInt, Value::Int(0)) => Err(("0 is out of range".into(), None)),
            // A negative or zero whole number (`-3` lexes as a decimal).
            (ValueKind::PositiveInt, Value::Float(x)) if *x < 1.0 && x.fract() == 0.0 => {
                let shown = if x.abs() < 1e15 {
                    format!("{x}")
                } else {
                    format!("{x:?}")
                };
                Err((format!("{shown} is out of range"), None))
            }
            (ValueKind::PositiveInt, Value::Int(i)) => Ok(Value::Int(*i)),
            (ValueKind::PositiveFloat, Value::Int(i)) if *i > 0 => Ok(Value::Float(*i as f64)),
            (ValueKind::PositiveFloat, Value::Float(x)) if x.is_finite() && *x > 0.0 => {
                Ok(Value::Float(*x))
            }
            (ValueKind::PositiveFloat, Value::Int(_) | Value::Float(_)) => {
                Err((format!("{v} is out of range"), None))
            }
            (ValueKind::Float, Value::Int(i)) => Ok(Value::Float(*i as f64)),
            (ValueKind::Float, Value::Float(x)) if x.is_finite() => Ok(Value::Float(*x)),
            (ValueKind::Float, Value::Float(_)) => Err((format!("{v} is not finite"), None)),
            (ValueKind::Bool, Value::Bool(b)) => Ok(Value::Bool(*b)),
            (ValueKind::Activation, Value::Word(w)) if ACTIVATIONS.contains(&w.as_str()) => {
                Ok(Value::Word(w.clone()))
            }
            (ValueKind::Activation, Value::Word(w)) => Err((
                format!("unknown activation `{}`", crate::quote(w)),
                crate::suggest(w, ACTIVATIONS).map(str::to_string),
            )),
            (ValueKind::Bool, Value::Word(w)) => Err((
                format!("`{}` is not a boolean", crate::quote(w)),
                crate::suggest(w, &["true", "false"]).map(str::to_string),
            )),
            (_, other) => Err((
                format!(
                    "{} `{}` has the wrong type",
                    describe(other),
                    crate::quote(&other.to_string())
                ),
                None,
            )),
        }
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Int(_) => "the integer",
        Value::Float(_) => "the decimal",
        Value::Bool(_) => "the boolean",
        Value::Word(_) => "the word",
    }
}

/// One key a layer accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDef {
    /// The key as written.
    pub name: &'static str,
    /// Its type and range.
    pub kind: ValueKind,
    /// Its default, as DSL text (`D` stands for the dimension the flow is
    /// built for).
    pub default: &'static str,
    /// What it means.
    pub doc: &'static str,
}

/// What goes between consecutive copies of a repeated layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Nothing: the copies follow each other.
    Plain,
    /// A reversal of the coordinates (autoregressive layers, as in the MAF paper).
    Reverse,
    /// The next copy uses the complementary mask (couplings, as in RealNVP).
    ComplementMask,
}

/// One layer name of the DSL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerDef {
    /// The canonical name.
    pub name: &'static str,
    /// Other names for it.
    pub aliases: &'static [&'static str],
    /// The keys it accepts.
    pub keys: &'static [KeyDef],
    /// What separates repeated copies.
    pub repeat: Repeat,
    /// One line about it.
    pub summary: &'static str,
}

const HIDDEN: KeyDef = KeyDef {
    name: "hidden",
    kind: ValueKind::PositiveInt,
    default: "64",
    doc: "width of each hidden layer of the conditioner",
};
const DEPTH: KeyDef = KeyDef {
    name: "depth",
    kind: ValueKind::PositiveInt,
    default: "2",
    doc: "number of hidden layers of the conditioner",
};
const ACTIVATION: KeyDef = KeyDef {
    name: "activation",
    kind: ValueKind::Activation,
    default: "relu",
    doc: "nonlinearity of the conditioner: relu, tanh or elu",
};
const IDENTITY_INIT: KeyDef = KeyDef {
    name: "identity_init",
    kind: ValueKind::Bool,
    default: "true",
    doc: "whether a fresh layer is exactly the identity (false: standard random initialisation)",
};
/// Planar and radial flows start random by default, as in Rezende & Mohamed
/// (2015): a planar flow's identity point (`u = w = 0`) is a saddle where every
/// parameter gradient vanishes, so training could not leave it.
const IDENTITY_INIT_RANDOM: KeyDef = KeyDef {
    default: "false",
    ..IDENTITY_INIT
};
const RESIDUAL: KeyDef = KeyDef {
    name: "residual",
    kind: ValueKind::Bool,
    default: "false",
    doc: "whether the conditioner is built of residual blocks (then `depth` counts blocks of two layers)",
};
const BINS: KeyDef = KeyDef {
    name: "bins",
    kind: ValueKind::PositiveInt,
    default: "8",
    doc: "number of spline bins K",
};
const BOUND: KeyDef = KeyDef {
    name: "bound",
    kind: ValueKind::PositiveFloat,
    default: "3.0",
    doc: "the spline acts on [-bound, bound] and is the identity outside",
};

const UNITS: KeyDef = KeyDef {
    name: "units",
    kind: ValueKind::PositiveInt,
    default: "8",
    doc: "number of sigmoid units K of each coordinate's deep sigmoidal transformer",
};

const LOW: KeyDef = KeyDef {
    name: "low",
    kind: ValueKind::Float,
    default: "-1.0",
    doc: "lower end of the image interval (low, high)",
};
const HIGH: KeyDef = KeyDef {
    name: "high",
    kind: ValueKind::Float,
    default: "1.0",
    doc: "upper end of the image interval (low, high); must exceed low",
};
const HINGE: KeyDef = KeyDef {
    name: "hinge",
    kind: ValueKind::PositiveFloat,
    default: "0.1",
    doc: "width of the soft corners at low and high (smaller: closer to the identity inside)",
};
const EXPONENT: KeyDef = KeyDef {
    name: "p",
    kind: ValueKind::Float,
    default: "2.0",
    doc: "the exponent, finite and not 0",
};

const BLOCKS: KeyDef = KeyDef {
    name: "blocks",
    kind: ValueKind::PositiveInt,
    default: "2",
    doc: "number of hidden block layers of the block neural autoregressive network (bnaf)",
};
/// `bnaf`: `hidden` is the total width of each hidden layer (rounded up to
/// a multiple of D); its activation is tanh, as in the paper.
const BNAF: &[KeyDef] = &[HIDDEN, IDENTITY_INIT_RANDOM, BLOCKS];

const REFLECTIONS: KeyDef = KeyDef {
    name: "m",
    kind: ValueKind::PositiveInt,
    default: "D",
    doc: "number of Householder reflections in the orthogonal Q (default: D, the dimension)",
};

const CONDITIONED: &[KeyDef] = &[HIDDEN, DEPTH, ACTIVATION, IDENTITY_INIT, RESIDUAL];
const SPLINE: &[KeyDef] = &[
    HIDDEN,
    DEPTH,
    ACTIVATION,
    IDENTITY_INIT,
    RESIDUAL,
    BINS,
    BOUND,
];
const NAF: &[KeyDef] = &[HIDDEN, DEPTH, ACTIVATION, IDENTITY_INIT, RESIDUAL, UNITS];
/// The circular spline acts on `[−π, π)`: no `bound`.
const CIRCULAR: &[KeyDef] = &[HIDDEN, DEPTH, ACTIVATION, IDENTITY_INIT, RESIDUAL, BINS];
const INIT_ONLY: &[KeyDef] = &[IDENTITY_INIT];
const RANDOM_INIT_ONLY: &[KeyDef] = &[IDENTITY_INIT_RANDOM];

/// Every layer of the DSL, in documentation order.
pub const LAYERS: &[LayerDef] = &[
    LayerDef {
        name: "maf",
        aliases: &[],
        keys: CONDITIONED,
        repeat: Repeat::Reverse,
        summary: "masked autoregressive flow: density in 1 pass, sampling in D passes",
    },
    LayerDef {
        name: "iaf",
        aliases: &[],
        keys: CONDITIONED,
        repeat: Repeat::Reverse,
        summary: "inverse autoregressive flow: sampling in 1 pass, density of outside points in D passes",
    },
    LayerDef {
        name: "nice",
        aliases: &[],
        keys: CONDITIONED,
        repeat: Repeat::ComplementMask,
        summary: "additive coupling (NICE): volume preserving, both directions 1 pass",
    },
    LayerDef {
        name: "realnvp",
        aliases: &[],
        keys: CONDITIONED,
        repeat: Repeat::ComplementMask,
        summary: "affine coupling (RealNVP): both directions 1 pass",
    },
    LayerDef {
        name: "spline_coupling",
        aliases: &["nsf"],
        keys: SPLINE,
        repeat: Repeat::ComplementMask,
        summary: "rational-quadratic spline coupling (neural spline flow): both directions 1 pass",
    },
    LayerDef {
        name: "circular_spline",
        aliases: &[],
        keys: CIRCULAR,
        repeat: Repeat::ComplementMask,
        summary: "circular rational-quadratic spline coupling on the torus [-pi, pi)^D: both directions 1 pass",
    },
    LayerDef {
        name: "spline_ar",
        aliases: &[],
        keys: SPLINE,
        repeat: Repeat::Reverse,
        summary: "autoregressive rational-quadratic spline: density in 1 pass, sampling in D passes",
    },
    LayerDef {
        name: "naf",
        aliases: &[],
        keys: NAF,
        repeat: Repeat::Reverse,
        summary: "neural autoregressive flow (deep sigmoidal): density in 1 pass, sampling in D passes with root finding",
    },
    LayerDef {
        name: "bnaf",
        aliases: &[],
        keys: BNAF,
        repeat: Repeat::Reverse,
        summary: "block neural autoregressive flow: density in 1 network pass, sampling by D root findings",
    },
    LayerDef {
        name: "planar",
        aliases: &[],
        keys: RANDOM_INIT_ONLY,
        repeat: Repeat::Plain,
        summary: "planar flow: sampling in closed form, inverse by 1-D root finding",
    },
    LayerDef {
        name: "radial",
        aliases: &[],
        keys: RANDOM_INIT_ONLY,
        repeat: Repeat::Plain,
        summary: "radial flow: sampling in closed form, inverse by solving for the radius",
    },
    LayerDef {
        name: "sylvester",
        aliases: &[],
        keys: &[REFLECTIONS],
        repeat: Repeat::Plain,
        summary: "orthogonal (Householder) Sylvester flow: sampling in closed form, inverse by D scalar root findings",
    },
    LayerDef {
        name: "batchnorm",
        aliases: &[],
        keys: INIT_ONLY,
        repeat: Repeat::Plain,
        summary: "invertible batch normalisation (MAF paper)",
    },
    LayerDef {
        name: "actnorm",
        aliases: &[],
        keys: INIT_ONLY,
        repeat: Repeat::Plain,
        summary: "per-dimension scale and shift with data-dependent initialisation (Glow)",
    },
    LayerDef {
        name: "lu",
        aliases: &[],
        keys: INIT_ONLY,
        repeat: Repeat::Plain,
        summary: "LU-decomposed invertible linear map with a bias (Glow)",
    },
    LayerDef {
        name: "permute",
        aliases: &[],
        keys: &[],
        repeat: Repeat::Plain,
        summary: "a fixed random permutation drawn from the build rng",
    },
    LayerDef {
        name: "reverse",
        aliases: &[],
        keys: &[],
        repeat: Repeat::Plain,
        summary: "reverses the order of the coordinates",
    },
    LayerDef {
        name: "exp",
        aliases: &[],
        keys: &[],
        repeat: Repeat::Plain,
        summary: "elementwise exp onto (0, inf)",
    },
    LayerDef {
        name: "sigmoid",
        aliases: &[],
        keys: &[],
        repeat: Repeat::Plain,
        summary: "elementwise logistic sigmoid onto (0, 1)",
    },
    LayerDef {
        name: "tanh",
        aliases: &[],
        keys: &[],
        repeat: Repeat::Plain,
        summary: "elementwise tanh onto (-1, 1)",
    },
    LayerDef {
        name: "softplus",
        aliases: &[],
        keys: &[],
        repeat: Repeat::Plain,
        summary: "elementwise softplus onto (0, inf)",
    },
    LayerDef {
        name: "soft_clip",
        aliases: &[],
        keys: &[LOW, HIGH, HINGE],
        repeat: Repeat::Plain,
        summary: "elementwise smooth clip of R onto (low, high), nearly the identity inside",
    },
    LayerDef {
        name: "power",
        aliases: &[],
        keys: &[EXPONENT],
        repeat: Repeat::Plain,
        summary: "elementwise x^p on (0, inf)",
    },
    LayerDef {
        name: "reciprocal",
        aliases: &[],
        keys: &[],
        repeat: Repeat::Plain,
        summary: "elementwise 1/x on R without 0, its own inverse",
    },
    LayerDef {
        name: "ordered",
        aliases: &[],
        keys: &[],
        repeat: Repeat::Plain,
        summary: "onto increasing vectors: y0 = x0, yi = y(i-1) + exp(xi)",
    },
];

/// The table entry for a name or alias.
pub fn layer_def(name: &str) -> Option<&'static LayerDef> {
    LAYERS
        .iter()
        .find(|d| d.name == name || d.aliases.contains(&name))
        .or_else(|| crate::registry::registered_def(name))
}
