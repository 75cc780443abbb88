//! The side store: values too large or too varied to pack into a slot
//! (sets, vectors, foreign objects), referenced from the slot by index.

use crate::operator::Operator;

/// Values by index, with a free list for reuse after removals.
#[derive(Clone, Debug)]
pub(crate) struct SideStore<V> {
    slots: Vec<Option<V>>,
    free: Vec<usize>,
    /// Heap bytes owned by the stored values themselves, as the operator
    /// reports them, while `counted`: wide, so that no report, however
    /// large, can wrap the sum and unbalance it when the value goes.
    value_bytes: u128,
    /// Whether `value_bytes` is kept as values come and go (a maplet with a
    /// memory limit needs the sum at every insert). Otherwise values are
    /// measured only when the sum is asked for: measuring a value (a set's
    /// every item) can cost more than storing it.
    counted: bool,
    /// While a batch is open: its changes, oldest first, to undo on failure,
    /// and the capacities of `slots` and `free` when it began.
    log: Option<(Vec<Change<V>>, usize, usize)>,
}

/// One change to the store, as [`SideStore::rollback`] undoes it.
#[derive(Clone, Debug)]
enum Change<V> {
    /// A value went in at `index`, taken from the free list or pushed.
    Inserted { index: usize, reused: bool },
    /// The value at `index` was `old`.
    Replaced { index: usize, old: V },
}

impl<V> Default for SideStore<V> {
    fn default() -> Self {
        SideStore {
            slots: Vec::new(),
            free: Vec::new(),
            value_bytes: 0,
            counted: false,
            log: None,
        }
    }
}

impl<V: Clone> SideStore<V> {
    /// The index the next [`insert`](SideStore::insert) will use.
    pub(crate) fn next_index(&self) -> usize {
        self.free.last().copied().unwrap_or(self.slots.len())
    }

    /// Extra heap bytes the next insert may allocate for the index itself.
    pub(crate) fn bytes_for_one_more(&self) -> usize {
        if self.free.is_empty() && self.slots.len() == self.slots.capacity() {
            self.slots.capacity().max(4) * std::mem::size_of::<Option<V>>()
        } else {
            0
        }
    }

    /// Room for one more index, so that the next
    /// [`insert`](SideStore::insert) allocates nothing; an error if the
    /// memory cannot be had.
    pub(crate) fn try_reserve_one(&mut self) -> Result<(), crate::storage::AllocError> {
        if self.free.is_empty() {
            let bytes = self.bytes_for_one_more();
            self.slots
                .try_reserve(1)
                .map_err(|_| crate::storage::AllocError { bytes })?;
        }
        Ok(())
    }

    /// Heap bytes value `i` owns, as the operator counts them.
    pub(crate) fn value_heap_size<O: Operator<Value = V>>(&self, i: usize, op: &O) -> usize {
        self.slots[i].as_ref().map_or(0, |v| op.heap_size(v))
    }

    pub(crate) fn get(&self, i: usize) -> &V {
        self.slots[i]
            .as_ref()
            .expect("side store: empty index referenced from a slot")
    }

    pub(crate) fn insert<O: Operator<Value = V>>(&mut self, v: V, op: &O) -> usize {
        if self.counted {
            self.value_bytes += op.heap_size(&v) as u128;
        }
        let (index, reused) = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(v);
                (i, true)
            }
            None => {
                self.slots.push(Some(v));
                (self.slots.len() - 1, false)
            }
        };
        if let Some((log, _, _)) = &mut self.log {
            log.push(Change::Inserted { index, reused });
        }
        index
    }

    pub(crate) fn replace<O: Operator<Value = V>>(&mut self, i: usize, v: V, op: &O) {
        if self.counted {
            self.value_bytes += op.heap_size(&v) as u128;
        }
        if let Some(old) = self.slots[i].replace(v) {
            if self.counted {
                self.value_bytes -= op.heap_size(&old) as u128;
            }
            if let Some((log, _, _)) = &mut self.log {
                log.push(Change::Replaced { index: i, old });
            }
        }
    }

    /// Starts recording changes so that [`rollback`](SideStore::rollback)
    /// can undo them. Removals are not recorded: a batch only inserts.
    pub(crate) fn begin(&mut self) {
        self.log = Some((Vec::new(), self.slots.capacity(), self.free.capacity()));
    }

    /// Stops recording and keeps the changes.
    pub(crate) fn commit(&mut self) {
        self.log = None;
    }

    /// Stops recording and undoes every change since
    /// [`begin`](SideStore::begin), newest first, leaving the store as it was.
    pub(crate) fn rollback<O: Operator<Value = V>>(&mut self, op: &O) {
        let Some((log, slots_capacity, free_capacity)) = self.log.take() else {
            return;
        };
        for change in log.into_iter().rev() {
            match change {
                Change::Inserted { index, reused } => {
                    if let Some(v) = self.slots[index].take() {
                        if self.counted {
                            self.value_bytes -= op.heap_size(&v) as u128;
                        }
                    }
                    if reused {
                        self.free.push(index);
                    } else {
                        self.slots.pop();
                    }
                }
                Change::Replaced { index, old } => {
                    if self.counted {
                        self.value_bytes += op.heap_size(&old) as u128;
                    }
                    if let Some(v) = self.slots[index].replace(old) {
                        if self.counted {
                            self.value_bytes -= op.heap_size(&v) as u128;
                        }
                    }
                }
            }
        }
        // Give back what the batch allocated, so the store's size is as before.
        self.slots.shrink_to(slots_capacity);
        self.free.shrink_to(free_capacity);
    }

    pub(crate) fn remove<O: Operator<Value = V>>(&mut self, i: usize, op: &O) {
        if let Some(old) = self.slots[i].take() {
            if self.counted {
                self.value_bytes -= op.heap_size(&old) as u128;
            }
        }
        self.free.push(i);
    }

    /// Heap bytes held: the index, the free list, and what the stored
    /// values own as the operator's [`heap_size`](Operator::heap_size)
    /// counts it.
    pub(crate) fn heap_bytes<O: Operator<Value = V>>(&self, op: &O) -> usize {
        let values = if self.counted {
            self.value_bytes
        } else {
            self.sum_of_values(op)
        };
        (self.slots.capacity() * std::mem::size_of::<Option<V>>())
            .saturating_add(self.free.capacity() * 8)
            .saturating_add(usize::try_from(values).unwrap_or(usize::MAX))
    }

    fn sum_of_values<O: Operator<Value = V>>(&self, op: &O) -> u128 {
        self.slots
            .iter()
            .flatten()
            .map(|v| op.heap_size(v) as u128)
            .sum()
    }

    /// Keeps the values' sum from now on (`on`), or stops and measures them
    /// only when asked (see `counted`).
    pub(crate) fn count_values<O: Operator<Value = V>>(&mut self, op: &O, on: bool) {
        if on && !self.counted {
            self.value_bytes = self.sum_of_values(op);
        }
        if !on {
            self.value_bytes = 0;
        }
        self.counted = on;
    }

    /// Stored values (for serialization), `None` at free indices.
    pub(crate) fn slots(&self) -> &[Option<V>] {
        &self.slots
    }

    /// A store holding `slots`; free indices are those that are `None`.
    /// Counted (see `counted`) if `counted`.
    pub(crate) fn from_slots<O: Operator<Value = V>>(
        slots: Vec<Option<V>>,
        op: &O,
        counted: bool,
    ) -> Self {
        let free = (0..slots.len())
            .rev()
            .filter(|&i| slots[i].is_none())
            .collect();
        let mut store = SideStore {
            slots,
            free,
            value_bytes: 0,
            counted: false,
            log: None,
        };
        store.count_values(op, counted);
        store
    }
}
