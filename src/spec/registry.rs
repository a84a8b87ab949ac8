//! The open layer set: users' layers registered under a name, so that the
//! flow DSL, [`Flow`](super::Flow) and saved models know them like the
//! built-ins.

use std::any::{Any, TypeId};
use std::sync::RwLock;

use normflow_dsl::{LayerDef, RegisterError, Repeat};

use crate::bijector::{Differentiable, Elementwise, ScalarBijector};
use crate::{Error, Parameters, Real};

/// A registered user layer inside a [`Flow`](super::Flow): a trainable
/// bijector that knows the name it was registered under.
pub trait UserLayer<T: Real>: Differentiable<T> {
    /// The registered name.
    fn name(&self) -> &'static str;
    /// A deep copy.
    fn clone_layer(&self) -> Box<dyn UserLayer<T>>;
}

impl<L: ScalarBijector, T: Real> UserLayer<T> for Elementwise<L, T> {
    fn name(&self) -> &'static str {
        L::NAME
    }
    fn clone_layer(&self) -> Box<dyn UserLayer<T>> {
        Box::new(self.clone())
    }
}

impl<T: Real> Clone for Box<dyn UserLayer<T>> {
    fn clone(&self) -> Self {
        self.clone_layer()
    }
}

/// Two user layers are equal when they have the same name, dimension,
/// parameters and state.
impl<T: Real> PartialEq for Box<dyn UserLayer<T>> {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
            && self.dim() == other.dim()
            && self.params_to_vec() == other.params_to_vec()
            && state(&**self) == state(&**other)
    }
}

fn state<T: Real>(l: &dyn UserLayer<T>) -> Vec<T> {
    let mut out = Vec::new();
    l.visit_state(&mut |s| out.extend_from_slice(s));
    out
}

type Builder<T> = fn(usize) -> Box<dyn UserLayer<T>>;

struct Entry {
    name: &'static str,
    type_id: TypeId,
    build_f32: Builder<f32>,
    build_f64: Builder<f64>,
    params_per_coord: usize,
}

static REGISTRY: RwLock<Vec<Entry>> = RwLock::new(Vec::new());

/// Registers the user layer `L` under [`L::NAME`](ScalarBijector::NAME):
/// from then on the name stands in [`FlowSpec::parse`](super::FlowSpec::parse)
/// text (with a count, `name(3)`, and no keys), flows built from such specs
/// contain [`Elementwise<L>`](Elementwise) layers at `L::default()`'s initial
/// parameters, and models that contain them save and load by name.
///
/// Registering the same type twice changes nothing. A built-in name, a name
/// registered by another type, or a name that is not a word is refused with
/// an error that says which. Loading a model that names a layer nobody
/// registered is an error naming it.
///
/// ```
/// use normflow::autodiff::Scalar;
/// use normflow::bijector::ScalarBijector;
/// use normflow::spec::{FlowSpec, register_layer};
///
/// #[derive(Debug, Clone, Default)]
/// struct Shift1;
/// impl ScalarBijector for Shift1 {
///     const NAME: &'static str = "shift_each";
///     const PARAMS: &'static [&'static str] = &["b"];
///     fn forward<S: Scalar>(&self, x: S, p: &[S]) -> S { x + p[0] }
///     fn inverse(&self, y: f64, p: &[f64]) -> f64 { y - p[0] }
///     fn log_derivative<S: Scalar>(&self, _x: S, _p: &[S]) -> S { S::from(0.0) }
/// }
///
/// assert!(FlowSpec::parse("maf >> shift_each").is_err()); // not known yet
/// register_layer::<Shift1>()?;
/// let spec = FlowSpec::parse("maf >> shift_each(2)")?;
/// let flow = spec.build::<f64>(3, &mut rand::rng())?;
/// assert_eq!(flow.layers().len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn register_layer<L: ScalarBijector + Default>() -> Result<(), Error> {
    let refuse = |e: RegisterError| Error::InvalidParameter {
        context: "register_layer".into(),
        argument: format!("{}::NAME", std::any::type_name::<L>()),
        expected:
            "a word (letters, digits, `_`) that no built-in layer and no other registered type uses"
                .into(),
        got: e.to_string(),
    };
    let mut reg = REGISTRY.write().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = reg.iter().find(|e| e.name == L::NAME) {
        return if e.type_id == TypeId::of::<L>() {
            Ok(())
        } else {
            Err(refuse(RegisterError::Taken(L::NAME)))
        };
    }
    let def = LayerDef {
        name: L::NAME,
        aliases: &[],
        keys: &[],
        repeat: Repeat::Plain,
        summary: L::SUMMARY,
    };
    if let Some(known) = normflow_dsl::layer_def(L::NAME) {
        // A built-in, or a definition registered straight with the DSL.
        let built_in = normflow_dsl::LAYERS.iter().any(|d| d.name == known.name);
        let e = if built_in {
            RegisterError::BuiltIn(L::NAME)
        } else {
            RegisterError::Taken(L::NAME)
        };
        return Err(refuse(e));
    }
    normflow_dsl::register_layer(Box::leak(Box::new(def))).map_err(refuse)?;
    reg.push(Entry {
        name: L::NAME,
        type_id: TypeId::of::<L>(),
        build_f32: |dim| Box::new(Elementwise::<L, f32>::new(L::default(), dim)),
        build_f64: |dim| Box::new(Elementwise::<L, f64>::new(L::default(), dim)),
        params_per_coord: L::PARAMS.len(),
    });
    Ok(())
}

/// A fresh layer of the registered name for `dim` coordinates, or `None`
/// if no type is registered under it.
pub(crate) fn build<T: Real>(name: &str, dim: usize) -> Option<Box<dyn UserLayer<T>>> {
    let reg = REGISTRY.read().unwrap_or_else(|p| p.into_inner());
    let e = reg.iter().find(|e| e.name == name)?;
    let any: Box<dyn Any> = if TypeId::of::<T>() == TypeId::of::<f64>() {
        Box::new((e.build_f64)(dim))
    } else {
        Box::new((e.build_f32)(dim))
    };
    any.downcast::<Box<dyn UserLayer<T>>>().ok().map(|b| *b)
}

/// How many parameters each coordinate of the registered layer `name` has.
pub(crate) fn params_per_coord(name: &str) -> Option<usize> {
    let reg = REGISTRY.read().unwrap_or_else(|p| p.into_inner());
    reg.iter()
        .find(|e| e.name == name)
        .map(|e| e.params_per_coord)
}

/// The names registered so far (for listings).
pub fn registered_layers() -> Vec<&'static str> {
    let reg = REGISTRY.read().unwrap_or_else(|p| p.into_inner());
    reg.iter().map(|e| e.name).collect()
}
