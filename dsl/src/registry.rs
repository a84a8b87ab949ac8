//! Layer names registered at run time, beside the built-in table.
//!
//! A program that defines its own layer registers its [`LayerDef`] here, so
//! that the run-time parser accepts the name (with the keys the definition
//! lists) exactly like a built-in one. The `flow!` macro checks its input at
//! compile time, before any registration, so it knows only the built-ins.

use std::sync::RwLock;

use crate::LayerDef;
use crate::table::LAYERS;

static REGISTERED: RwLock<Vec<&'static LayerDef>> = RwLock::new(Vec::new());

/// Why a name could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// The name (or an alias) is a built-in layer's.
    BuiltIn(&'static str),
    /// The name is registered already with another definition.
    Taken(&'static str),
    /// The name is not a word: a letter followed by letters, digits or `_`.
    NotAName(&'static str),
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::BuiltIn(n) => write!(f, "`{n}` is a built-in layer's name"),
            RegisterError::Taken(n) => {
                write!(f, "`{n}` is registered already, with another definition")
            }
            RegisterError::NotAName(n) => write!(
                f,
                "`{n}` is not a layer name: expected a letter followed by letters, digits or `_`"
            ),
        }
    }
}

impl std::error::Error for RegisterError {}

fn is_word(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Adds `def` to the names the parser accepts. Registering the same
/// definition twice is allowed (it changes nothing); a built-in name, a name
/// registered with another definition, or a name that is not a word is
/// refused.
///
/// ```
/// use normflow_dsl::{LayerDef, Repeat, register_layer, parse};
/// static DEF: LayerDef = LayerDef {
///     name: "my_layer", aliases: &[], keys: &[], repeat: Repeat::Plain,
///     summary: "a layer of my own",
/// };
/// register_layer(&DEF).unwrap();
/// assert_eq!(parse("my_layer(2)").unwrap().layers[0].count, 2);
/// let built_in: &'static LayerDef = Box::leak(Box::new(LayerDef { name: "maf", ..DEF }));
/// assert!(register_layer(built_in).is_err());
/// ```
pub fn register_layer(def: &'static LayerDef) -> Result<(), RegisterError> {
    for n in std::iter::once(def.name).chain(def.aliases.iter().copied()) {
        if !is_word(n) {
            return Err(RegisterError::NotAName(n));
        }
        if LAYERS.iter().any(|d| d.name == n || d.aliases.contains(&n)) {
            return Err(RegisterError::BuiltIn(n));
        }
    }
    let mut reg = REGISTERED.write().unwrap_or_else(|p| p.into_inner());
    for known in reg.iter() {
        let clash = std::iter::once(def.name)
            .chain(def.aliases.iter().copied())
            .find(|n| known.name == *n || known.aliases.contains(n));
        if let Some(n) = clash {
            return if **known == *def {
                Ok(())
            } else {
                Err(RegisterError::Taken(n))
            };
        }
    }
    reg.push(def);
    Ok(())
}

/// The registered definition named `name` (or with `name` as an alias).
pub fn registered_def(name: &str) -> Option<&'static LayerDef> {
    let reg = REGISTERED.read().unwrap_or_else(|p| p.into_inner());
    reg.iter()
        .copied()
        .find(|d| d.name == name || d.aliases.contains(&name))
}

/// The names (and aliases) registered so far, in registration order.
pub fn registered_names() -> Vec<&'static str> {
    let reg = REGISTERED.read().unwrap_or_else(|p| p.into_inner());
    reg.iter()
        .flat_map(|d| std::iter::once(d.name).chain(d.aliases.iter().copied()))
        .collect()
}
