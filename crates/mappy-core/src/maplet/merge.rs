//! Maplets combined: compatibility, merge, value mapping and concatenation of
//! shards.

use super::{widths_for, Maplet};
use crate::error::{MapletError, Result};
use crate::operator::Operator;
use crate::shard::Shard;
use crate::side::SideStore;
use crate::table::Builder;

impl<O: Operator> Maplet<O> {
    /// Whether `other` was built with the same operator, parameters and
    /// seed, so that the two can be merged.
    ///
    /// # Errors
    /// [`MapletError::Incompatible`], saying what differs.
    pub fn check_compatible(&self, other: &Self) -> Result<()> {
        match self.differences(other, true) {
            Some(m) => Err(MapletError::Incompatible(m)),
            None => Ok(()),
        }
    }

    /// What differs between the parameters of `self` and `other` (their
    /// shards too if `shards`), if anything.
    fn differences(&self, other: &Self, shards: bool) -> Option<String> {
        if self.op.kind() != other.op.kind() {
            Some(format!(
                "operators differ ({} and {})",
                self.op.kind(),
                other.op.kind()
            ))
        } else if self.options.seed != other.options.seed {
            Some("hash seeds differ".to_string())
        } else if shards && self.shard != other.shard {
            Some(format!(
                "they hold different hash ranges ({} and {})",
                self.shard, other.shard
            ))
        } else if self.options.fixed_precision != other.options.fixed_precision {
            Some("one keeps fixed-precision fingerprints, the other does not".to_string())
        } else if self.expected_items != other.expected_items {
            Some(format!(
                "expected_items differ ({} and {})",
                self.expected_items, other.expected_items
            ))
        } else if self.false_positive_rate != other.false_positive_rate {
            Some(format!(
                "false-positive rates differ ({} and {})",
                self.false_positive_rate, other.false_positive_rate
            ))
        } else {
            None
        }
    }

    /// Merges `other` into `self`: afterwards `self` answers as one maplet
    /// that saw the inserts of both. A linear merge of the two sorted tables.
    ///
    /// # Errors
    /// [`MapletError::Incompatible`] for maplets built differently, the
    /// operator's errors, [`MapletError::MemoryLimit`]; `self` then answers
    /// exactly as before.
    pub fn merge(&mut self, other: &Self) -> Result<()>
    where
        O: Clone,
    {
        self.writable()?;
        other.ensure_verified()?;
        self.check_compatible(other)?;
        // Bring both to the same number of home slots and field width; neither
        // changes any answer.
        let mut a = self.try_clone()?;
        let mut b = other.try_clone()?;
        while a.table.canonical() < b.table.canonical() {
            let (f, v, s) = (a.table.fbits(), a.table.vbits(), a.table.signed());
            a.grow_to(f, v, s)?;
        }
        while b.table.canonical() < a.table.canonical() {
            let (f, v, s) = (b.table.fbits(), b.table.vbits(), b.table.signed());
            b.grow_to(f, v, s)?;
        }
        let fbits = a.table.fbits().max(b.table.fbits());
        for m in [&mut a, &mut b] {
            if m.table.fbits() < fbits {
                m.table = m.table.reformat(fbits, m.table.vbits(), m.table.signed())?;
            }
        }
        let vbits = a.table.vbits().max(b.table.vbits());
        let signed = a.table.signed() || b.table.signed();
        let mut out = Builder::new(a.table.canonical(), fbits, vbits, signed)?;
        let mut side = SideStore::default();
        let mut push = |out: &mut Builder, q: u64, f: u64, v: O::Value| -> Result<()> {
            let bits = if O::PACKED {
                a.op.pack(&v)
            } else {
                side.try_reserve_one()?;
                side.insert(v, &a.op) as i64
            };
            if !out.table().fits(bits) {
                let (vbits, signed) = widths_for(out.table().vbits(), out.table().signed(), bits);
                out.widen_values(vbits, signed)?;
            }
            out.push(q, f, bits)?;
            Ok(())
        };
        let mut ra = a.table.runs().peekable();
        let mut rb = b.table.runs().peekable();
        loop {
            let (qa, qb) = (ra.peek().map(|r| r.0), rb.peek().map(|r| r.0));
            let q = match (qa, qb) {
                (None, None) => break,
                (Some(x), None) | (None, Some(x)) => x,
                (Some(x), Some(y)) => x.min(y),
            };
            let mut sa = if qa == Some(q) {
                ra.next().map(|r| r.1..r.2 + 1)
            } else {
                None
            }
            .unwrap_or(0..0)
            .peekable();
            let mut sb = if qb == Some(q) {
                rb.next().map(|r| r.1..r.2 + 1)
            } else {
                None
            }
            .unwrap_or(0..0)
            .peekable();
            loop {
                let fa = sa.peek().map(|&s| a.table.field(s));
                let fb = sb.peek().map(|&s| b.table.field(s));
                match (fa, fb) {
                    (None, None) => break,
                    (Some(x), Some(y)) if x == y => {
                        let v = a.op.merge(
                            &a.value_ref(sa.next().unwrap()),
                            &b.value_ref(sb.next().unwrap()),
                        )?;
                        push(&mut out, q, x, v)?;
                    }
                    (Some(x), y) if y.is_none_or(|y| x < y) => {
                        push(&mut out, q, x, a.value_at(sa.next().unwrap()))?
                    }
                    (_, Some(y)) => push(&mut out, q, y, b.value_at(sb.next().unwrap()))?,
                    (Some(_), None) => unreachable!(),
                }
            }
        }
        let mut merged = Maplet {
            table: out.finish(),
            side,
            ..a
        };
        merged
            .side
            .count_values(&merged.op, merged.options.memory_limit.is_some());
        while merged.len() > merged.table.max_len() {
            let f = merged.fbits_after_doubling();
            let (v, s) = (merged.table.vbits(), merged.table.signed());
            merged.grow_to(f, v, s)?;
        }
        self.check_memory_of(&merged)?;
        *self = merged;
        Ok(())
    }

    fn check_memory_of(&self, m: &Self) -> Result<()> {
        if let Some(limit) = self.options.memory_limit {
            let needed = m.memory_usage();
            if needed > limit {
                return Err(MapletError::MemoryLimit { needed, limit });
            }
        }
        Ok(())
    }

    /// The same entries under another operator, each value converted by `f`
    /// (for example from packed numbers to foreign objects when a binding
    /// meets a value the packed form cannot hold). Answers keep their
    /// fingerprints; only values change.
    ///
    /// # Errors
    /// The first error `f` returns; `self` is not consumed.
    pub fn map_values<O2: Operator>(
        &self,
        op: O2,
        mut f: impl FnMut(&O::Value) -> Result<O2::Value>,
    ) -> Result<Maplet<O2>> {
        self.ensure_verified()?;
        let t = &self.table;
        let mut out = Builder::new(t.canonical(), t.fbits(), 1, false)?;
        let mut side = SideStore::default();
        for (q, start, end) in t.runs() {
            for s in start..=end {
                let v = f(&self.value_ref(s))?;
                let bits = if O2::PACKED {
                    op.pack(&v)
                } else {
                    side.try_reserve_one()?;
                    side.insert(v, &op) as i64
                };
                if !out.table().fits(bits) {
                    let (vbits, signed) =
                        widths_for(out.table().vbits(), out.table().signed(), bits);
                    out.widen_values(vbits, signed)?;
                }
                out.push(q, t.field(s), bits)?;
            }
        }
        side.count_values(&op, self.options.memory_limit.is_some());
        Ok(self.with_contents(op, out.finish(), side))
    }

    /// The one ordinary maplet that `shards`, all the shards of a sharded
    /// maplet in order (see [`crate::shard`]), hold together: the same
    /// entries, each in the home slot it has in one maplet of all the home
    /// slots. A shard that grew less than the others is doubled (in a
    /// copy) to their size first, which keeps every entry's answers.
    ///
    /// # Errors
    /// [`MapletError::InvalidParameter`] unless `shards` are shards 0 to
    /// `S - 1` of `S`; [`MapletError::Incompatible`] for shards built with
    /// different parameters or seeds; [`MapletError::Corrupt`] for a damaged
    /// memory-mapped shard; [`MapletError::OutOfMemory`],
    /// [`MapletError::MemoryLimit`] (the first shard's limit, for the whole).
    pub fn concat(shards: &[&Maplet<O>]) -> Result<Maplet<O>>
    where
        O: Clone,
    {
        let first = *shards
            .first()
            .ok_or_else(|| MapletError::InvalidParameter("no shards to concatenate".into()))?;
        let count = first.shard.count();
        if shards.len() != count as usize {
            return Err(MapletError::InvalidParameter(format!(
                "{} shards given, but they are shards of {count}",
                shards.len()
            )));
        }
        for (i, s) in shards.iter().enumerate() {
            if s.shard != Shard::new(i as u32, count)? {
                return Err(MapletError::InvalidParameter(format!(
                    "shards must come in order: found {} where shard {i} of {count} belongs",
                    s.shard
                )));
            }
            first
                .differences(s, false)
                .map_or(Ok(()), |m| Err(MapletError::Incompatible(m)))?;
            s.ensure_verified()?;
        }
        // Every shard at the size of the largest.
        let target = shards.iter().map(|s| s.capacity()).max().unwrap_or(1);
        let mut grown = Vec::with_capacity(shards.len());
        for &s in shards {
            grown.push(if s.capacity() < target {
                let mut m = s.try_clone()?;
                while m.capacity() < target {
                    let f = m.fbits_after_doubling();
                    let (v, sg) = (m.table.vbits(), m.table.signed());
                    m.grow_to(f, v, sg)?;
                }
                std::borrow::Cow::Owned(m)
            } else {
                std::borrow::Cow::Borrowed(s)
            });
        }
        let fbits = grown.iter().map(|s| s.table.fbits()).max().unwrap_or(2);
        let (vbits, signed) = grown.iter().fold((1, false), |(v, sg), s| {
            (v.max(s.table.vbits()), sg | s.table.signed())
        });
        let whole = target
            .checked_mul(count as u64)
            .ok_or(MapletError::OutOfMemory { bytes: usize::MAX })?;
        let mut out = Builder::new(whole, fbits, vbits, signed)?;
        let mut side = SideStore::default();
        for (i, s) in grown.iter().enumerate() {
            let t = &s.table;
            let (offset, widen) = (i as u64 * target, fbits - t.fbits());
            for (q, start, end) in t.runs() {
                for slot in start..=end {
                    let bits = if O::PACKED {
                        t.value(slot)
                    } else {
                        side.try_reserve_one()?;
                        side.insert(s.value_ref(slot).into_owned(), &s.op) as i64
                    };
                    if !out.table().fits(bits) {
                        // Side-store indices run past any one shard's.
                        let (v, sg) = widths_for(out.table().vbits(), out.table().signed(), bits);
                        out.widen_values(v, sg)?;
                    }
                    out.push(offset + q, t.field(slot) << widen, bits)?;
                }
            }
        }
        side.count_values(&first.op, first.options.memory_limit.is_some());
        let m = Maplet {
            initial_canonical: first.initial_canonical * count as u64,
            shard: Shard::WHOLE,
            ..first.with_contents(first.op.clone(), out.finish(), side)
        };
        first.check_memory_of(&m)?;
        Ok(m)
    }
}
