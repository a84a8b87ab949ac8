//! The shared frame of the location-scale families with independent
//! coordinates (`Normal`, `Laplace`, `Logistic`): the type with its
//! `loc` and `scale` vectors, validated construction (from vectors, one
//! scalar pair, or slices), deserialisation through the same checks, and the
//! accessors. Each family's file adds its density, sampler and gradient.

/// Declares a location-scale family: `loc_scale_family! { docs Name / Repr = "Repr<T>";
/// scalar: docs; from_slices: docs; loc: docs; scale: docs; }`.
macro_rules! loc_scale_family {
    (
        $(#[$doc:meta])*
        $name:ident / $repr:ident = $repr_str:literal;
        scalar: $(#[$sdoc:meta])*;
        from_slices: $(#[$fdoc:meta])*;
        loc: $(#[$ldoc:meta])*;
        scale: $(#[$cdoc:meta])*;
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = $repr_str)]
        pub struct $name<T: $crate::Real> {
            loc: nalgebra::DVector<T>,
            scale: nalgebra::DVector<T>,
        }

        /// The serialised form: deserialising goes through the same
        /// validation as the constructor, so that a saved model cannot
        /// bypass it.
        #[derive(serde::Deserialize)]
        struct $repr<T: $crate::Real> {
            loc: nalgebra::DVector<T>,
            scale: nalgebra::DVector<T>,
        }

        impl<T: $crate::Real> TryFrom<$repr<T>> for $name<T> {
            type Error = $crate::Error;
            fn try_from(r: $repr<T>) -> Result<Self, $crate::Error> {
                $name::new(r.loc, r.scale)
            }
        }

        impl<T: $crate::Real> $name<T> {
            /// Errors if `loc` and `scale` differ in length or are empty,
            /// `loc` has a non-finite entry, or `scale` an entry that is not
            /// finite and positive.
            pub fn new(
                loc: nalgebra::DVector<T>,
                scale: nalgebra::DVector<T>,
            ) -> Result<Self, $crate::Error> {
                Self::checked(concat!(stringify!($name), "::new"), loc, scale)
            }

            $(#[$sdoc])*
            pub fn scalar(loc: T, scale: T) -> Result<Self, $crate::Error> {
                Self::checked(
                    concat!(stringify!($name), "::scalar"),
                    nalgebra::DVector::from_element(1, loc),
                    nalgebra::DVector::from_element(1, scale),
                )
            }

            $(#[$fdoc])*
            pub fn from_slices(loc: &[T], scale: &[T]) -> Result<Self, $crate::Error> {
                Self::checked(
                    concat!(stringify!($name), "::from_slices"),
                    nalgebra::DVector::from_column_slice(loc),
                    nalgebra::DVector::from_column_slice(scale),
                )
            }

            fn checked(
                context: &str,
                loc: nalgebra::DVector<T>,
                scale: nalgebra::DVector<T>,
            ) -> Result<Self, $crate::Error> {
                $crate::error::check::loc_scale(context, &loc, &scale)?;
                Ok(Self { loc, scale })
            }

            $(#[$ldoc])*
            pub fn loc(&self) -> &nalgebra::DVector<T> {
                &self.loc
            }

            $(#[$cdoc])*
            pub fn scale(&self) -> &nalgebra::DVector<T> {
                &self.scale
            }
        }
    };
}
pub(crate) use loc_scale_family;
