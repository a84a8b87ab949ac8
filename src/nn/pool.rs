//! A small per-thread pool of scratch buffers, so that the matrices of a
//! network's passes reuse memory from one call to the next instead of going
//! back to the allocator (which hands out freshly mapped, page-faulting memory
//! for large buffers).
//!
//! A buffer is taken as a guard, [`Scratch`] (a matrix) or [`ScratchVec`] (a
//! vector), that dereferences to the buffer and gives it back to the pool of
//! the thread that drops it. A buffer handed on to a caller on purpose leaves
//! the pool through [`Scratch::into_inner`].

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use nalgebra::DMatrix;

use crate::Real;

/// A pooled `rows × cols` matrix: dereferences to the [`DMatrix`], and gives
/// its buffer back to the dropping thread's pool when dropped.
pub(crate) struct Scratch<T: Real> {
    m: ManuallyDrop<DMatrix<T>>,
}

impl<T: Real> Scratch<T> {
    /// The matrix, taken out of the pool's care: its buffer is freed like any
    /// other matrix's (for a result handed on to the caller).
    pub(crate) fn into_inner(self) -> DMatrix<T> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so `m` is taken exactly once and
        // not used again.
        unsafe { ManuallyDrop::take(&mut this.m) }
    }
}

impl<T: Real> Drop for Scratch<T> {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and `m` is not used after it.
        let m = unsafe { ManuallyDrop::take(&mut self.m) };
        give::<T>(m.data.into());
    }
}

impl<T: Real> Deref for Scratch<T> {
    type Target = DMatrix<T>;
    #[inline(always)]
    fn deref(&self) -> &DMatrix<T> {
        &self.m
    }
}

impl<T: Real> DerefMut for Scratch<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut DMatrix<T> {
        &mut self.m
    }
}

impl<T: Real> Clone for Scratch<T> {
    /// A copy in a fresh buffer, which joins the pool when dropped.
    fn clone(&self) -> Self {
        Scratch {
            m: ManuallyDrop::new((*self.m).clone()),
        }
    }
}

impl<T: Real> fmt::Debug for Scratch<T> {
    /// The matrix's own format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.m, f)
    }
}

/// A pooled vector: dereferences to the [`Vec`], and gives it back to the
/// dropping thread's pool when dropped.
pub(crate) struct ScratchVec<T: Real> {
    v: ManuallyDrop<Vec<T>>,
}

impl<T: Real> ScratchVec<T> {
    /// An empty vector that holds no buffer (nothing goes back to the pool).
    pub(crate) fn empty() -> Self {
        ScratchVec {
            v: ManuallyDrop::new(Vec::new()),
        }
    }
}

impl<T: Real> Drop for ScratchVec<T> {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and `v` is not used after it.
        give(unsafe { ManuallyDrop::take(&mut self.v) });
    }
}

impl<T: Real> Deref for ScratchVec<T> {
    type Target = Vec<T>;
    #[inline(always)]
    fn deref(&self) -> &Vec<T> {
        &self.v
    }
}

impl<T: Real> DerefMut for ScratchVec<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.v
    }
}

impl<'a, T: Real> IntoIterator for &'a ScratchVec<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.v.iter()
    }
}

impl<'a, T: Real> IntoIterator for &'a mut ScratchVec<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.v.iter_mut()
    }
}

impl<T: Real> fmt::Debug for ScratchVec<T> {
    /// The vector's own format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.v, f)
    }
}

/// A `rows × cols` matrix whose contents are unspecified (whatever its
/// pooled buffer last held, or zeros): for outputs that are written before
/// they are read, such as the product of a gemm with `β = 0`. Saves the
/// pass over memory that zeroing costs.
pub(crate) fn take_scratch<T: Real>(rows: usize, cols: usize) -> Scratch<T> {
    Scratch {
        m: ManuallyDrop::new(DMatrix::from_vec(rows, cols, unspecified(rows * cols))),
    }
}

/// A `col.len() × cols` matrix whose every column is `col` (a bias
/// broadcast over a batch), in a pooled buffer.
pub(crate) fn take_matrix_with_columns<T: Real>(col: &[T], cols: usize) -> Scratch<T> {
    let mut v = take::<T>(col.len() * cols);
    v.clear();
    for _ in 0..cols {
        v.extend_from_slice(col);
    }
    Scratch {
        m: ManuallyDrop::new(DMatrix::from_vec(col.len(), cols, v)),
    }
}

/// `len` zeros in a buffer from the calling thread's pool.
pub(crate) fn take_zeros<T: Real>(len: usize) -> ScratchVec<T> {
    let mut v = take::<T>(len);
    v.clear();
    v.resize(len, T::zero());
    ScratchVec {
        v: ManuallyDrop::new(v),
    }
}

/// A buffer of `len` values from the calling thread's pool, with unspecified
/// contents (see [`take_scratch`]).
pub(crate) fn take_scratch_vec<T: Real>(len: usize) -> ScratchVec<T> {
    ScratchVec {
        v: ManuallyDrop::new(unspecified(len)),
    }
}

/// `len` values of a pooled buffer, as they were (or zeros where it was shorter).
fn unspecified<T: Real>(len: usize) -> Vec<T> {
    let mut v = take::<T>(len);
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, T::zero());
    }
    v
}

use store::{give, take};

/// The per-thread store behind the guards: at most [`store::KEEP`] buffers
/// per thread and scalar type, the smallest that fits taken first.
mod store {
    use std::any::{Any, TypeId};
    use std::cell::RefCell;

    use crate::Real;

    /// Buffers kept per thread and type.
    pub(super) const KEEP: usize = 64;

    thread_local! {
        static F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
        static F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
    }

    /// Moves a `Vec<T>` into a `Vec<U>` when `T` and `U` are the same type.
    fn cast<T: 'static, U: 'static>(v: Vec<T>) -> Result<Vec<U>, Vec<T>> {
        let mut slot = Some(v);
        match (&mut slot as &mut dyn Any).downcast_mut::<Option<Vec<U>>>() {
            Some(s) => Ok(s.take().expect("just filled")),
            None => Err(slot.expect("not taken")),
        }
    }

    fn take_from<U>(pool: &RefCell<Vec<Vec<U>>>, len: usize) -> Option<Vec<U>> {
        let mut p = pool.borrow_mut();
        // The smallest buffer that fits.
        let pick = p
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i)?;
        // Not cleared: the caller decides whether the old contents matter.
        Some(p.swap_remove(pick))
    }

    fn give_to<U>(pool: &RefCell<Vec<Vec<U>>>, v: Vec<U>) {
        if v.capacity() == 0 {
            return;
        }
        let mut p = pool.borrow_mut();
        if p.len() < KEEP {
            p.push(v);
        } else if let Some((i, _)) = p
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| b.capacity())
            .filter(|(_, b)| b.capacity() < v.capacity())
        {
            p[i] = v;
        }
    }

    /// A vector with capacity for at least `len` values, holding whatever it
    /// held when it was given back (or nothing).
    pub(super) fn take<T: Real>(len: usize) -> Vec<T> {
        let got = if TypeId::of::<T>() == TypeId::of::<f32>() {
            F32.try_with(|p| take_from(p, len))
                .ok()
                .flatten()
                .and_then(|v| cast::<f32, T>(v).ok())
        } else {
            F64.try_with(|p| take_from(p, len))
                .ok()
                .flatten()
                .and_then(|v| cast::<f64, T>(v).ok())
        };
        match got {
            Some(v) => v,
            None => Vec::with_capacity(len),
        }
    }

    /// Keeps `v` for a later [`take`] (a vector without a buffer is dropped).
    pub(super) fn give<T: Real>(v: Vec<T>) {
        if v.capacity() == 0 {
            return;
        }
        match cast::<T, f32>(v) {
            Ok(v) => {
                let _ = F32.try_with(|p| give_to(p, v));
            }
            Err(v) => {
                if let Ok(v) = cast::<T, f64>(v) {
                    let _ = F64.try_with(|p| give_to(p, v));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_buffers_come_back_with_the_requested_shape() {
        let m = take_scratch::<f64>(3, 5);
        assert_eq!(m.shape(), (3, 5));
        drop(m);
        let m = take_scratch::<f64>(2, 2);
        assert_eq!(m.shape(), (2, 2));
        drop(m);
        let z = take_zeros::<f64>(7);
        assert!(z.len() == 7 && z.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn a_dropped_guard_gives_its_buffer_back_with_its_capacity() {
        // Each test runs on its own thread, so this thread's pool starts empty.
        let v = take_scratch_vec::<f32>(1000);
        let (ptr, cap) = (v.as_ptr(), v.capacity());
        assert!(v.len() == 1000 && cap >= 1000);
        drop(v);
        // A smaller request gets the same buffer, capacity intact.
        let v = take_scratch_vec::<f32>(10);
        assert_eq!((v.as_ptr(), v.capacity(), v.len()), (ptr, cap, 10));
        drop(v);
        // So does a matrix, and zeros are zeros whatever the buffer held.
        let mut m = take_scratch::<f32>(20, 50);
        assert_eq!((m.as_ptr(), m.shape()), (ptr, (20, 50)));
        m.fill(3.0);
        drop(m);
        let z = take_zeros::<f32>(100);
        assert_eq!(z.as_ptr(), ptr);
        assert!(z.iter().all(|v| *v == 0.0));
        drop(z);
        let b = take_matrix_with_columns::<f32>(&[1.0, 2.0], 3);
        assert_eq!(b.as_ptr(), ptr);
        assert_eq!(b.as_slice(), &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn nested_takes_get_distinct_buffers() {
        let a = take_scratch_vec::<f64>(64);
        let b = take_scratch_vec::<f64>(64);
        let c = take_scratch::<f64>(8, 8);
        let ptrs = [a.as_ptr(), b.as_ptr(), c.as_ptr()];
        assert!(ptrs[0] != ptrs[1] && ptrs[1] != ptrs[2] && ptrs[0] != ptrs[2]);
        drop((a, b, c));
        // All three came back: three more takes reuse them, still distinct.
        let again = [
            take_scratch_vec::<f64>(64),
            take_scratch_vec::<f64>(64),
            take_scratch_vec::<f64>(64),
        ];
        let mut got: Vec<_> = again.iter().map(|v| v.as_ptr()).collect();
        let mut want = ptrs.to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn into_inner_keeps_the_buffer_out_of_the_pool() {
        let m = take_scratch::<f64>(4, 4);
        let ptr = m.as_ptr();
        let kept: DMatrix<f64> = m.into_inner();
        // The pool is empty again: a new take gets a new buffer.
        let n = take_scratch::<f64>(4, 4);
        assert_ne!(n.as_ptr(), ptr);
        assert_eq!(kept.shape(), (4, 4));
    }

    #[test]
    fn empty_guards_and_clones_behave() {
        let e = ScratchVec::<f32>::empty();
        assert!(e.is_empty() && e.capacity() == 0);
        drop(e);
        let mut m = take_scratch::<f64>(2, 3);
        m.fill(1.5);
        let c = m.clone();
        assert_eq!(*c, *m);
        assert_ne!(c.as_ptr(), m.as_ptr());
        assert_eq!(format!("{c:?}"), format!("{:?}", *m));
    }
}
