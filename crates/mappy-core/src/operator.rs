//! Merge operators: what happens when two values meet under one fingerprint.
//!
//! A maplet stores one value per fingerprint. When a key is inserted again,
//! or when two different keys share a fingerprint, their values are merged by
//! the maplet's operator. Each operator documents its *one-sided* guarantee:
//! the direction in which a query answer can differ from the truth.
//!
//! Operators whose values are small integers or floats are *packed*: their
//! values live in the slot table beside the fingerprint, using only as many
//! bits as the largest value needs. Other values (sets, vectors, foreign
//! objects) live in a side store referenced from the slot.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::{MapletError, Result};

/// Identifies an operator, for compatibility checks and serialization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperatorKind {
    /// [`Counter`].
    Counter,
    /// [`Max`] over `i64`.
    MaxI64,
    /// [`Min`] over `i64`.
    MinI64,
    /// [`Max`] over `f64`.
    MaxF64,
    /// [`Min`] over `f64`.
    MinF64,
    /// [`SetUnion`].
    SetUnion,
    /// [`VectorAdd`] over `f32`.
    VectorF32,
    /// [`VectorAdd`] over `f64`.
    VectorF64,
    /// [`Custom`], with a user-chosen name.
    Custom(&'static str),
}

impl fmt::Display for OperatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperatorKind::Custom(name) => write!(f, "custom:{name}"),
            other => write!(f, "{}", format!("{other:?}").to_lowercase()),
        }
    }
}

/// How an operator merges values, and how its values are stored.
///
/// `merge` must be commutative and associative for a maplet to answer the
/// same whatever the order of inserts and merges.
pub trait Operator {
    /// The value type.
    type Value: Clone;

    /// `true` if values are packed into the slot table through
    /// [`pack`](Operator::pack) and [`unpack`](Operator::unpack); `false` if
    /// they live in the side store.
    const PACKED: bool;

    /// `true` if [`validate`](Operator::validate) accepts every value, so
    /// that loading a saved maplet need not call it for each stored one.
    /// The default, `false`, always calls it.
    const ACCEPTS_EVERY_VALUE: bool = false;

    /// Which operator this is.
    fn kind(&self) -> OperatorKind;

    /// Merges `incoming` into `existing`, returning the merged value.
    ///
    /// # Errors
    /// A value that cannot be merged (overflow, mismatched vector lengths, a
    /// failing user function). The maplet is then left unchanged.
    fn merge(&self, existing: &Self::Value, incoming: &Self::Value) -> Result<Self::Value>;

    /// Takes `removed` out of `existing` for [`Maplet::delete`]: `Ok(Some(v))`
    /// keeps the entry with value `v`, `Ok(None)` removes the entry. The
    /// default removes the entry.
    ///
    /// [`Maplet::delete`]: crate::Maplet::delete
    ///
    /// # Errors
    /// A value that cannot be subtracted; the maplet is then left unchanged.
    fn subtract(
        &self,
        existing: &Self::Value,
        removed: &Self::Value,
    ) -> Result<Option<Self::Value>> {
        let _ = (existing, removed);
        Ok(None)
    }

    /// Takes `removed` out of one of a key's entries, `existing`, when the
    /// key has several (after merging maplets that grew differently; see
    /// [`Maplet::delete`]): what the entry keeps (`None` removes it), and
    /// what is left to take from the key's next entry. The default takes
    /// everything from the first, as [`subtract`](Operator::subtract).
    ///
    /// [`Maplet::delete`]: crate::Maplet::delete
    ///
    /// # Errors
    /// As [`subtract`](Operator::subtract).
    #[allow(clippy::type_complexity)]
    fn take_from(
        &self,
        existing: &Self::Value,
        removed: &Self::Value,
    ) -> Result<(Option<Self::Value>, Option<Self::Value>)> {
        Ok((self.subtract(existing, removed)?, None))
    }

    /// Checks a value before it is stored. The default accepts everything.
    ///
    /// # Errors
    /// A value the operator cannot hold (for example an empty vector).
    fn validate(&self, value: &Self::Value) -> Result<()> {
        let _ = value;
        Ok(())
    }

    /// Heap bytes a side-stored value owns beyond its own size, for the
    /// memory figures and limit. The default is 0.
    fn heap_size(&self, value: &Self::Value) -> usize {
        let _ = value;
        0
    }

    /// The packed form of a value (only called when `PACKED`). Small
    /// magnitudes should give small magnitudes: the slot table stores the
    /// result in as few bits as it needs, sign-extended.
    fn pack(&self, value: &Self::Value) -> i64 {
        let _ = value;
        unreachable!("pack called on an operator that is not packed")
    }

    /// The value of a packed form (only called when `PACKED`).
    fn unpack(&self, bits: i64) -> Self::Value {
        let _ = bits;
        unreachable!("unpack called on an operator that is not packed")
    }
}

/// Adds signed 64-bit counts.
///
/// One-sided guarantee: a query answers at least the true total of a key
/// when all inserted counts are non-negative (a colliding key can only add).
/// An addition that overflows `i64` is an error and changes nothing.
/// [`Maplet::delete`](crate::Maplet::delete) subtracts, and removes the
/// entry when the count reaches zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter;

impl Operator for Counter {
    type Value = i64;
    const PACKED: bool = true;
    const ACCEPTS_EVERY_VALUE: bool = true;

    fn kind(&self) -> OperatorKind {
        OperatorKind::Counter
    }

    fn merge(&self, existing: &i64, incoming: &i64) -> Result<i64> {
        existing.checked_add(*incoming).ok_or_else(|| {
            MapletError::Overflow(format!(
                "counter {existing} + {incoming} does not fit in 64 bits"
            ))
        })
    }

    fn subtract(&self, existing: &i64, removed: &i64) -> Result<Option<i64>> {
        match existing.checked_sub(*removed) {
            Some(0) => Ok(None),
            Some(v) => Ok(Some(v)),
            None => Err(MapletError::Overflow(format!(
                "counter {existing} - {removed} does not fit in 64 bits"
            ))),
        }
    }

    /// A positive entry gives at most what it holds; the rest comes off the
    /// key's next entry, so no entry turns negative.
    fn take_from(&self, existing: &i64, removed: &i64) -> Result<(Option<i64>, Option<i64>)> {
        if *existing > 0 && *removed > *existing {
            Ok((None, Some(removed - existing)))
        } else {
            Ok((self.subtract(existing, removed)?, None))
        }
    }

    #[inline]
    fn pack(&self, value: &i64) -> i64 {
        *value
    }

    #[inline]
    fn unpack(&self, bits: i64) -> i64 {
        bits
    }
}

/// A number that [`Max`] and [`Min`] can pack into the slot table.
pub trait Extremum: Copy + PartialOrd + fmt::Debug {
    /// Order-preserving packed form.
    fn to_packed(self) -> i64;
    /// Inverse of [`to_packed`](Extremum::to_packed).
    fn from_packed(bits: i64) -> Self;
    /// Operator kinds for max and min over this type.
    const KINDS: (OperatorKind, OperatorKind);
    /// Whether the value may be stored (floats reject NaN, which has no order).
    fn is_ordered(self) -> bool;
    /// `true` if [`is_ordered`](Extremum::is_ordered) holds for every value.
    /// The default is `false`.
    const ALWAYS_ORDERED: bool = false;
}

impl Extremum for i64 {
    fn to_packed(self) -> i64 {
        self
    }
    fn from_packed(bits: i64) -> Self {
        bits
    }
    const KINDS: (OperatorKind, OperatorKind) = (OperatorKind::MaxI64, OperatorKind::MinI64);
    fn is_ordered(self) -> bool {
        true
    }
    const ALWAYS_ORDERED: bool = true;
}

impl Extremum for f64 {
    // The IEEE bit pattern with the magnitude bits flipped for negative
    // numbers is ordered like the numbers themselves.
    fn to_packed(self) -> i64 {
        let b = self.to_bits() as i64;
        if b < 0 {
            b ^ i64::MAX
        } else {
            b
        }
    }
    fn from_packed(bits: i64) -> Self {
        let b = if bits < 0 { bits ^ i64::MAX } else { bits };
        f64::from_bits(b as u64)
    }
    const KINDS: (OperatorKind, OperatorKind) = (OperatorKind::MaxF64, OperatorKind::MinF64);
    fn is_ordered(self) -> bool {
        !self.is_nan()
    }
}

/// Keeps the largest value.
///
/// One-sided guarantee: a query answers at least the true maximum of a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Max<T>(std::marker::PhantomData<T>);

/// Keeps the smallest value.
///
/// One-sided guarantee: a query answers at most the true minimum of a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Min<T>(std::marker::PhantomData<T>);

impl<T> Max<T> {
    /// The max operator.
    pub const fn new() -> Self {
        Max(std::marker::PhantomData)
    }
}

impl<T> Min<T> {
    /// The min operator.
    pub const fn new() -> Self {
        Min(std::marker::PhantomData)
    }
}

fn check_ordered<T: Extremum>(v: &T) -> Result<()> {
    if v.is_ordered() {
        Ok(())
    } else {
        Err(MapletError::InvalidValue(format!("{v:?} has no order")))
    }
}

macro_rules! extremum_operator {
    ($name:ident, $pick:ident, $idx:tt) => {
        impl<T: Extremum> Operator for $name<T> {
            type Value = T;
            const PACKED: bool = true;
            const ACCEPTS_EVERY_VALUE: bool = T::ALWAYS_ORDERED;

            fn kind(&self) -> OperatorKind {
                T::KINDS.$idx
            }

            fn merge(&self, existing: &T, incoming: &T) -> Result<T> {
                check_ordered(incoming)?;
                Ok($pick(*existing, *incoming))
            }

            fn validate(&self, value: &T) -> Result<()> {
                check_ordered(value)
            }

            #[inline]
            fn pack(&self, value: &T) -> i64 {
                value.to_packed()
            }

            #[inline]
            fn unpack(&self, bits: i64) -> T {
                T::from_packed(bits)
            }
        }
    };
}

fn larger<T: PartialOrd>(a: T, b: T) -> T {
    if b > a {
        b
    } else {
        a
    }
}

fn smaller<T: PartialOrd>(a: T, b: T) -> T {
    if b < a {
        b
    } else {
        a
    }
}

extremum_operator!(Max, larger, 0);
extremum_operator!(Min, smaller, 1);

/// Unions sets.
///
/// One-sided guarantee: a query answers a superset of the true set of a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetUnion<T>(std::marker::PhantomData<T>);

impl<T> SetUnion<T> {
    /// The set-union operator.
    pub const fn new() -> Self {
        SetUnion(std::marker::PhantomData)
    }
}

impl<T: Ord + Clone> Operator for SetUnion<T> {
    type Value = BTreeSet<T>;
    const PACKED: bool = false;

    fn kind(&self) -> OperatorKind {
        OperatorKind::SetUnion
    }

    fn heap_size(&self, value: &BTreeSet<T>) -> usize {
        // A B-tree node holds up to 11 elements plus edges; about 2x the payload.
        2 * value.len() * std::mem::size_of::<T>()
    }

    fn merge(&self, existing: &BTreeSet<T>, incoming: &BTreeSet<T>) -> Result<BTreeSet<T>> {
        let mut out = existing.clone();
        out.extend(incoming.iter().cloned());
        Ok(out)
    }
}

/// A float type that [`VectorAdd`] can sum.
pub trait VectorElement: Copy + std::ops::Add<Output = Self> + fmt::Debug {
    /// The operator kind for vectors of this type.
    const KIND: OperatorKind;
}

impl VectorElement for f32 {
    const KIND: OperatorKind = OperatorKind::VectorF32;
}

impl VectorElement for f64 {
    const KIND: OperatorKind = OperatorKind::VectorF64;
}

/// Adds vectors element by element.
///
/// One-sided guarantee: with non-negative elements, a query answers at least
/// the true sum in every element. Vectors of different lengths are an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VectorAdd<T>(std::marker::PhantomData<T>);

impl<T> VectorAdd<T> {
    /// The vector-add operator.
    pub const fn new() -> Self {
        VectorAdd(std::marker::PhantomData)
    }
}

impl<T: VectorElement> Operator for VectorAdd<T> {
    type Value = Vec<T>;
    const PACKED: bool = false;

    fn kind(&self) -> OperatorKind {
        T::KIND
    }

    fn heap_size(&self, value: &Vec<T>) -> usize {
        value.capacity() * std::mem::size_of::<T>()
    }

    fn validate(&self, value: &Vec<T>) -> Result<()> {
        if value.is_empty() {
            return Err(MapletError::InvalidValue(
                "vectors must have at least one element".into(),
            ));
        }
        Ok(())
    }

    fn merge(&self, existing: &Vec<T>, incoming: &Vec<T>) -> Result<Vec<T>> {
        if existing.len() != incoming.len() {
            return Err(MapletError::InvalidValue(format!(
                "vector length mismatch: stored {} elements, got {}",
                existing.len(),
                incoming.len()
            )));
        }
        Ok(existing
            .iter()
            .zip(incoming)
            .map(|(a, b)| *a + *b)
            .collect())
    }
}

/// A user-supplied merge function over any value type.
///
/// The one-sided guarantee is whatever the function gives: a query answers
/// the function folded over the values of every key sharing the fingerprint.
pub struct Custom<V, F> {
    name: &'static str,
    merge: F,
    _value: std::marker::PhantomData<fn() -> V>,
}

impl<V, F> Custom<V, F>
where
    F: Fn(&V, &V) -> Result<V>,
{
    /// A custom operator named `name` (the name is checked when maplets are
    /// merged or loaded) merging with `merge(existing, incoming)`.
    pub fn new(name: &'static str, merge: F) -> Self {
        Custom {
            name,
            merge,
            _value: std::marker::PhantomData,
        }
    }
}

impl<V, F: Clone> Clone for Custom<V, F> {
    fn clone(&self) -> Self {
        Custom {
            name: self.name,
            merge: self.merge.clone(),
            _value: std::marker::PhantomData,
        }
    }
}

impl<V, F> fmt::Debug for Custom<V, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Custom({})", self.name)
    }
}

impl<V: Clone, F> Operator for Custom<V, F>
where
    F: Fn(&V, &V) -> Result<V>,
{
    type Value = V;
    const PACKED: bool = false;

    fn kind(&self) -> OperatorKind {
        OperatorKind::Custom(self.name)
    }

    fn merge(&self, existing: &V, incoming: &V) -> Result<V> {
        (self.merge)(existing, incoming)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_overflow_is_an_error() {
        assert!(Counter.merge(&i64::MAX, &1).is_err());
        assert_eq!(Counter.merge(&2, &3).unwrap(), 5);
        assert_eq!(Counter.subtract(&5, &5).unwrap(), None);
        assert_eq!(Counter.subtract(&5, &2).unwrap(), Some(3));
    }

    #[test]
    fn float_packing_preserves_order() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            3.5,
            f64::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(w[0].to_packed() <= w[1].to_packed(), "{w:?}");
            assert_eq!(f64::from_packed(w[0].to_packed()).to_bits(), w[0].to_bits());
        }
        assert!(Max::<f64>::new().merge(&1.0, &f64::NAN).is_err());
    }

    #[test]
    fn vector_lengths_must_match() {
        let op = VectorAdd::<f32>::new();
        assert_eq!(
            op.merge(&vec![1.0, 2.0], &vec![3.0, 4.0]).unwrap(),
            vec![4.0, 6.0]
        );
        assert!(op.merge(&vec![1.0], &vec![1.0, 2.0]).is_err());
    }

    #[test]
    fn custom_operator_calls_the_function() {
        let op = Custom::new("double", |a: &i32, b: &i32| Ok(a + 2 * b));
        assert_eq!(op.merge(&1, &2).unwrap(), 5);
        assert_eq!(op.kind(), OperatorKind::Custom("double"));
    }
}
