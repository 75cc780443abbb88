//! The undo record of an open batch, and running a batch all or nothing.

use super::Maplet;
use crate::operator::Operator;
use crate::table::Table;

/// The table's half of an open batch's undo record (the side store keeps
/// its own).
#[derive(Clone, Debug)]
pub(super) struct Journal {
    /// Entries created and packed values replaced, oldest first, until
    /// `saved` was taken.
    steps: Vec<Step>,
    /// The table before the batch's first doubling or value widening. Both
    /// build a whole new table, so keeping the old one costs no time.
    saved: Option<Table>,
    /// Blocks in the table when the batch began.
    nblocks: usize,
}

/// One change to the table, found again by the hash that made it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step {
    /// A new entry for this hash.
    Created(u64),
    /// The packed value of this hash's entry was the given bits.
    Replaced(u64, i64),
}

impl<O: Operator> Maplet<O> {
    /// Notes a change to the table in the open batch's journal, if any.
    #[inline]
    pub(super) fn record(&mut self, step: Step) {
        if let Some(j) = &mut self.journal {
            if j.saved.is_none() {
                j.steps.push(step);
            }
        }
    }

    /// Whether a batch is open that has not yet kept a table to return to
    /// (changes are journaled until it has one).
    pub(super) fn undo_lacks_table(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.saved.is_none())
    }

    /// Puts `table` in place of the current one, which an open batch keeps
    /// (the first time) to return to if the batch fails.
    pub(super) fn replace_table(&mut self, table: Table) {
        let old = std::mem::replace(&mut self.table, table);
        if let Some(j) = &mut self.journal {
            if j.saved.is_none() {
                j.saved = Some(old);
            }
        }
    }

    /// Runs `f` as one all-or-nothing batch of inserts: if it fails, every
    /// change it made to the table and the side store is undone, newest
    /// first, and the maplet is exactly as it was. Inside an open batch, `f`
    /// just runs: the outer batch undoes everything if it fails.
    ///
    /// `f` may only insert (`insert_hash`, `insert_many_hashes`). The first
    /// time the table is rebuilt (a doubling, a value widening, a one-pass
    /// merge) the old table is kept until the batch ends.
    pub(crate) fn atomically<T, E>(
        &mut self,
        f: impl FnOnce(&mut Self) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        if self.journal.is_some() {
            return f(self);
        }
        self.journal = Some(Box::new(Journal {
            steps: Vec::new(),
            saved: None,
            nblocks: self.table.nblocks(),
        }));
        self.side.begin();
        let r = f(self);
        let journal = self.journal.take().expect("journal open during the batch");
        if r.is_ok() {
            self.side.commit();
            return r;
        }
        if let Some(t) = journal.saved {
            self.table = t;
        }
        for step in journal.steps.into_iter().rev() {
            let (Step::Created(h) | Step::Replaced(h, _)) = step;
            let (q, f) = self.place(h);
            // Undoing newest first, the table is as it was right after this
            // step, so the step's entry is the best match for its hash.
            let s = self
                .table
                .best_match(q, f)
                .expect("journal: the entry a step made is present");
            match step {
                Step::Created(_) => self.table.remove(q, s),
                Step::Replaced(_, bits) => self.table.set_value(s, bits),
            }
        }
        self.table.truncate_blocks(journal.nblocks);
        self.side.rollback(&self.op);
        r
    }
}
