//! Serialisation through a checked form: a type with invariants is written
//! as a plain struct of its own fields and read back through its
//! constructor, so that a saved file cannot bypass the checks.

/// `checked_serde!(Type, Repr { a: A, b: B }, |r| Type::new(r.a, r.b))`
/// writes the serialised form `Repr<T>` (the fields, in order, with any
/// `#[serde(...)]` attributes given on them), the conversion of a
/// `Type<T>` into it and the checked conversion back; `Type<T>` carries
/// `#[serde(try_from = "Repr<T>", into = "Repr<T>")]`. With `load_only`
/// first, only reading goes through `Repr<T>` (`#[serde(try_from = …)]`;
/// the type writes itself).
macro_rules! checked_serde {
    ($ty:ident, $repr:ident { $($(#[$meta:meta])* $field:ident : $fty:ty),* $(,)? },
     |$r:ident| $build:expr) => {
        $crate::checked_serde::checked_serde!(load_only $ty,
            $repr { $($(#[$meta])* $field: $fty),* }, |$r| $build);
        impl<T: Real> From<$ty<T>> for $repr<T> {
            fn from(s: $ty<T>) -> Self {
                $repr { $($field: s.$field),* }
            }
        }
    };
    (load_only $ty:ident, $repr:ident { $($(#[$meta:meta])* $field:ident : $fty:ty),* $(,)? },
     |$r:ident| $build:expr) => {
        /// The serialised form, validated on load.
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(bound(
            serialize = "T: Real + serde::Serialize",
            deserialize = "T: Real + serde::Deserialize<'de>"
        ))]
        struct $repr<T: Real> {
            $($(#[$meta])* $field: $fty),*
        }
        impl<T: Real> TryFrom<$repr<T>> for $ty<T> {
            type Error = $crate::Error;
            fn try_from($r: $repr<T>) -> Result<Self, $crate::Error> {
                $build
            }
        }
    };
}
pub(crate) use checked_serde;
