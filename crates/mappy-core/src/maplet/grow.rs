//! Growth: widening the values and doubling the table.

use super::Maplet;
use crate::error::{MapletError, Result};
use crate::operator::Operator;
use crate::table::{Table, MAX_FBITS, MAX_LOAD};

impl<O: Operator> Maplet<O> {
    /// Widens the table's values: in place, unless an open batch has yet to
    /// keep a table to return to, in which case the old table becomes that.
    ///
    /// # Errors
    /// [`MapletError::OutOfMemory`], the table unchanged.
    pub(super) fn widen_values(&mut self, vbits: u32, signed: bool) -> Result<()> {
        if self.undo_lacks_table() {
            let t = self.table.reformat(self.table.fbits(), vbits, signed)?;
            self.replace_table(t);
        } else {
            self.table.widen_values(vbits, signed)?;
        }
        Ok(())
    }

    /// The field width to use after the next doubling.
    ///
    /// Doubling shortens every stored fingerprint by one bit but halves the
    /// load, so each generation of entries keeps the share of false positives
    /// it had. The entries that fill the table after doubling number `k` get
    /// a share of at most `ε / 2^k`, so the total stays below `2ε` however
    /// far the maplet grows, at the cost of about one more bit per doubling
    /// for new entries only (reserving bits up front would cost every entry
    /// from the start).
    pub(super) fn fbits_after_doubling(&self) -> u32 {
        self.fbits_after_doubling_of(&self.table)
    }

    pub(super) fn fbits_after_doubling_of(&self, table: &Table) -> u32 {
        if self.options.fixed_precision {
            return table.fbits();
        }
        let n2 = 2.0 * table.canonical() as f64;
        let doublings = (n2 / self.initial_canonical as f64).log2().round() as i32;
        let new_entries = (MAX_LOAD * n2 - table.len() as f64).max(1.0);
        let budget = self.false_positive_rate * 2f64.powi(-doublings);
        let mut fbits = table.fbits();
        while fbits < MAX_FBITS && new_entries * 2f64.powi(-(fbits as i32 - 1)) / n2 > budget {
            fbits += 1;
        }
        fbits
    }

    /// Doubles the table, its fields `fbits` wide and its values `vbits`
    /// (`signed`).
    ///
    /// # Errors
    /// [`MapletError::CapacityExhausted`] when some entry's fingerprint
    /// has no bit left to move into the home slot (see
    /// [`Options::fixed_precision`]); [`MapletError::OutOfMemory`]. The
    /// maplet is then unchanged. Side-store values stay where they are:
    /// each entry moves to one half, keeping its value's index.
    pub(super) fn grow_to(&mut self, fbits: u32, vbits: u32, signed: bool) -> Result<()> {
        self.check_can_double(&self.table)?;
        let doubled = self.table.doubled(fbits, vbits, signed)?;
        self.replace_table(doubled);
        Ok(())
    }

    /// `Ok` unless doubling `t` would copy entries into both halves: entries
    /// with no fingerprint bit left to move into the home slot. With fixed
    /// precision these are every entry after `2^(f - 1)`-fold growth; by
    /// default only the entries written at the initial size, whose
    /// fingerprints are the shortest (see [`Options::fixed_precision`]).
    pub(super) fn check_can_double(&self, t: &Table) -> Result<()> {
        if t.len_hist()[0] > 0 {
            let kind = if self.options.fixed_precision {
                "a fixed-precision maplet"
            } else {
                "a maplet"
            };
            return Err(MapletError::CapacityExhausted(format!(
                "{kind} built for {} items has grown {}-fold and its oldest \
                 fingerprints have no bits left; build it for more expected_items",
                self.expected_items,
                t.canonical() / self.initial_canonical
            )));
        }
        Ok(())
    }
}
