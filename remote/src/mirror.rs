//! Host memory of the client's in graphs. A copy captured into a graph
//! (`cudaMemcpyAsync` on a capturing stream) names host memory the graph
//! reads or writes at each launch, long after the call: the client's
//! memory is not the server's, so the server captures the copy from or to
//! a *mirror* of its own, which lives as long as the session. Each launch
//! of a graph first refreshes the mirrors graphs read from the client's
//! memory (the client sends its bytes with the launch), and once a launch
//! has run, the bytes it wrote to a mirror go back to the client's memory
//! with the next answer (see [`crate::wire::GraphHost`]).
//!
//! The server follows which mirrors each graph uses: those made or used
//! while a capture goes on (by the capture's id) belong to the graph it
//! ends with, an executable graph has its graph's (made or updated), a
//! launch runs its executable graph's, a clone has its original's, a
//! graph with a child graph node has the child's too (a graph launched
//! into a capture is one), and a destroyed graph's are forgotten. Copies from or to host memory added to a graph
//! node by node, and an executable graph's child node set anew where
//! either side copies host memory, are refused (see `Session::call`).

use std::collections::HashMap;

use serde_bytes::ByteBuf;

use crate::wire::Mirrored;

/// An event of a library's (`cudaEvent_t`, `CUevent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Event {
    /// The library's index in the plan.
    pub library: u16,
    /// The handle.
    pub handle: u64,
}

/// One mirror.
struct Mirror {
    /// The client's address and length.
    client: u64,
    len: usize,
    /// Read by graphs (refreshed at each launch), written by graphs
    /// (returned after), or both (a 2D copy's destination, whose bytes
    /// between rows the copy leaves as they were).
    reads: bool,
    writes: bool,
    /// The server's memory: `len` bytes, alive as long as the session.
    at: *mut u8,
    /// The events recorded after the launches that write it, whose bytes
    /// the client has not had yet.
    pending: Vec<Event>,
}

/// A session's mirrors.
#[derive(Default)]
pub(crate) struct Mirrors {
    list: Vec<Mirror>,
    /// Those each capture going on has used, by the capture's id.
    captures: HashMap<u64, Vec<usize>>,
    /// Those each graph's copies use, by the graph's handle.
    graphs: HashMap<u64, Vec<usize>>,
    /// Those each executable graph's copies use.
    execs: HashMap<u64, Vec<usize>>,
    /// Those made or used again since the last answer, for the client.
    told: Vec<Mirrored>,
}

/// The most bytes a session mirrors (each mirror's rounded up to pages).
pub(crate) const MAX_MIRRORED: usize = 1 << 32;
/// The most mirrors a session has.
pub(crate) const MAX_MIRRORS: usize = 4096;
/// The most bytes of mirrors one answer returns (the rest wait for the
/// next).
const WRITES_PER_ANSWER: usize = 256 << 20;
const PAGE: usize = 4096;

/// Adds mirrors `used` to those of `key` in `map` (none: no entry).
fn add(map: &mut HashMap<u64, Vec<usize>>, key: u64, used: &[usize]) {
    if used.is_empty() {
        return;
    }
    let all = map.entry(key).or_default();
    for &i in used {
        if !all.contains(&i) {
            all.push(i);
        }
    }
}

impl Mirrors {
    /// The server's address for `len` bytes of the client's at `client`,
    /// which a copy being captured (capture `capture`) reads and/or writes:
    /// its mirror, made the first time (zeroed memory from `alloc`, which
    /// gives `len` bytes rounded up to whole pages). `bytes` are the
    /// client's bytes now, for a mirror graphs read.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mirror(
        &mut self,
        client: u64,
        len: usize,
        (reads, writes): (bool, bool),
        bytes: Option<&[u8]>,
        capture: u64,
        alloc: impl FnOnce(usize) -> Option<*mut u8>,
    ) -> Result<u64, String> {
        let found = self.list.iter().position(|m| {
            m.client == client && m.len == len && m.reads == reads && m.writes == writes
        });
        let i = match found {
            Some(i) => i,
            None => {
                let rounded = len.max(1).div_ceil(PAGE) * PAGE;
                let total: usize = self
                    .list
                    .iter()
                    .map(|m| m.len.max(1).div_ceil(PAGE) * PAGE)
                    .sum();
                if self.list.len() >= MAX_MIRRORS || total.saturating_add(rounded) > MAX_MIRRORED {
                    return Err(format!(
                        "graphs' host memory over {MAX_MIRRORS} copies or {MAX_MIRRORED} bytes in one session"
                    ));
                }
                let at = alloc(rounded).ok_or("no host memory for a graph's copy")?;
                // SAFETY: `rounded` bytes of ours.
                unsafe { std::ptr::write_bytes(at, 0, rounded) };
                self.list.push(Mirror {
                    client,
                    len,
                    reads,
                    writes,
                    at,
                    pending: Vec::new(),
                });
                self.list.len() - 1
            }
        };
        let m = &self.list[i];
        if let Some(bytes) = bytes.filter(|b| b.len() == m.len && m.reads) {
            // SAFETY: the mirror's own `len` bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), m.at, m.len) };
        }
        // Told again each time a capture uses it: the client may have
        // forgotten it (its memory freed, and the same allocated again).
        let told = Mirrored {
            address: client,
            len: len as u64,
            reads,
            writes,
        };
        if !self.told.contains(&told) {
            self.told.push(told);
        }
        let used = self.captures.entry(capture).or_default();
        if !used.contains(&i) {
            used.push(i);
        }
        Ok(m.at as u64)
    }

    /// Capture `capture` ended, with `graph` (`None`: it failed): the
    /// graph uses the mirrors the capture used, with those it had (a
    /// capture into an existing graph adds to it).
    pub(crate) fn ended(&mut self, capture: u64, graph: Option<u64>) {
        let used = self.captures.remove(&capture).unwrap_or_default();
        if let Some(graph) = graph {
            add(&mut self.graphs, graph, &used);
        }
    }

    /// Graph `clone` was made a copy of graph `graph`.
    pub(crate) fn cloned(&mut self, graph: u64, clone: u64) {
        self.graphs.remove(&clone);
        let used = self.graphs.get(&graph).cloned().unwrap_or_default();
        add(&mut self.graphs, clone, &used);
    }

    /// A copy of graph `child` was added to graph `graph` as a node.
    pub(crate) fn nested(&mut self, graph: u64, child: u64) {
        let used = self.graphs.get(&child).cloned().unwrap_or_default();
        add(&mut self.graphs, graph, &used);
    }

    /// Executable graph `exec` was launched into capture `capture`: the
    /// capture's graph has its copies.
    pub(crate) fn launched_in_capture(&mut self, capture: u64, exec: u64) {
        let used = self.execs.get(&exec).cloned().unwrap_or_default();
        add(&mut self.captures, capture, &used);
    }

    /// Whether executable graph `exec` copies host memory.
    pub(crate) fn exec_uses_any(&self, exec: u64) -> bool {
        self.execs.get(&exec).is_some_and(|used| !used.is_empty())
    }

    /// Whether graph `graph` copies host memory.
    pub(crate) fn graph_uses_any(&self, graph: u64) -> bool {
        self.graphs.get(&graph).is_some_and(|used| !used.is_empty())
    }

    /// Executable graph `exec` was made of (or updated to) `graph`.
    pub(crate) fn instantiated(&mut self, exec: u64, graph: u64) {
        match self.graphs.get(&graph) {
            Some(used) => {
                self.execs.insert(exec, used.clone());
            }
            None => {
                self.execs.remove(&exec);
            }
        }
    }

    /// The host memory executable graph `exec` reads (the client's
    /// address and length of each mirror): what its launches carry.
    pub(crate) fn reads_of(&self, exec: u64) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = self
            .execs
            .get(&exec)
            .into_iter()
            .flatten()
            .map(|&i| &self.list[i])
            .filter(|m| m.reads)
            .map(|m| (m.client, m.len as u64))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Graph `graph` was destroyed (its handle may come back as another's).
    pub(crate) fn graph_destroyed(&mut self, graph: u64) {
        self.graphs.remove(&graph);
    }

    /// Executable graph `exec` was destroyed.
    pub(crate) fn exec_destroyed(&mut self, exec: u64) {
        self.execs.remove(&exec);
    }

    /// The device was reset or the context destroyed: its graphs, captures
    /// and events are gone (the mirrors' memory is the session's own).
    pub(crate) fn context_gone(&mut self) {
        self.captures.clear();
        self.graphs.clear();
        self.execs.clear();
        for m in &mut self.list {
            m.pending.clear();
        }
    }

    /// Writes the client's bytes now into the mirrors graphs read: only
    /// into a mirror it was told of, exactly as long.
    pub(crate) fn refresh(&mut self, data: &[(u64, ByteBuf)]) {
        for (client, bytes) in data {
            for m in self
                .list
                .iter()
                .filter(|m| m.reads && m.client == *client && m.len == bytes.len())
            {
                // SAFETY: the mirror's own `len` bytes.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), m.at, m.len) };
            }
        }
    }

    /// Whether executable graph `exec` writes any mirror.
    pub(crate) fn writes_any(&self, exec: u64) -> bool {
        self.execs
            .get(&exec)
            .is_some_and(|used| used.iter().any(|&i| self.list[i].writes))
    }

    /// Executable graph `exec` was launched, and `event` recorded after it
    /// on its stream: the mirrors it writes have their bytes once the
    /// event has completed.
    pub(crate) fn launched(&mut self, exec: u64, event: Event) {
        let Some(used) = self.execs.get(&exec) else {
            return;
        };
        for &i in used {
            let m = &mut self.list[i];
            if m.writes {
                m.pending.push(event);
            }
        }
    }

    /// The libraries whose events are pending.
    pub(crate) fn pending_libraries(&self) -> Vec<u16> {
        let mut out: Vec<u16> = self
            .list
            .iter()
            .flat_map(|m| m.pending.iter().map(|e| e.library))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The bytes of each mirror whose launches have all run, for the
    /// client, each once, up to a budget per answer. `done` says of an
    /// event whether it has completed (`Some(true)`), not yet (`None`), or
    /// failed (`Some(false)`: the launch's failure is its own to report,
    /// and the mirror's bytes are not sent). Returns the writes, and the
    /// events no mirror waits for any more (to destroy).
    pub(crate) fn writes(
        &mut self,
        mut done: impl FnMut(Event) -> Option<bool>,
    ) -> (Vec<(u64, ByteBuf)>, Vec<Event>) {
        let mut status: HashMap<Event, Option<bool>> = HashMap::new();
        let mut finished: Vec<Event> = Vec::new();
        let mut out = Vec::new();
        let mut budget = WRITES_PER_ANSWER;
        for m in &mut self.list {
            if m.pending.is_empty() {
                continue;
            }
            let states: Vec<Option<bool>> = m
                .pending
                .iter()
                .map(|e| *status.entry(*e).or_insert_with(|| done(*e)))
                .collect();
            if states.iter().any(Option::is_none) {
                continue;
            }
            let failed = states.contains(&Some(false));
            if !failed {
                if m.len > budget && !out.is_empty() {
                    continue;
                }
                budget = budget.saturating_sub(m.len);
                // SAFETY: the mirror's own `len` bytes.
                let bytes = unsafe { std::slice::from_raw_parts(m.at, m.len) };
                out.push((m.client, ByteBuf::from(bytes.to_vec())));
            }
            finished.append(&mut m.pending);
        }
        finished.sort_by_key(|e| (e.library, e.handle));
        finished.dedup();
        // An event another mirror still waits for stays.
        finished.retain(|e| !self.list.iter().any(|m| m.pending.contains(e)));
        (out, finished)
    }

    /// The mirrors made or used again since the last answer.
    pub(crate) fn take_told(&mut self) -> Vec<Mirrored> {
        std::mem::take(&mut self.told)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap(len: usize) -> Option<*mut u8> {
        Some(Box::leak(vec![0xeeu8; len].into_boxed_slice()).as_mut_ptr())
    }

    fn event(handle: u64) -> Event {
        Event { library: 0, handle }
    }

    const IN: (bool, bool) = (true, false);
    const OUT: (bool, bool) = (false, true);

    #[test]
    fn a_graph_launched_refreshes_what_it_reads_and_returns_what_it_wrote_once_run() {
        let mut m = Mirrors::default();
        let input = m
            .mirror(0x1000, 4, IN, Some(&[1, 2, 3, 4]), 1, heap)
            .unwrap();
        let output = m.mirror(0x2000, 2, OUT, None, 1, heap).unwrap();
        // SAFETY: the mirror's 2 bytes: zeroed, never another's leftovers.
        assert_eq!(
            unsafe { std::slice::from_raw_parts(output as *const u8, 2) },
            [0, 0]
        );
        // The same memory in the same capture: the same mirror.
        assert_eq!(m.mirror(0x1000, 4, IN, None, 1, heap).unwrap(), input);
        assert_eq!(m.take_told().len(), 2);
        m.ended(1, Some(7));
        m.instantiated(70, 7);
        assert!(m.writes_any(70));
        assert_eq!(m.reads_of(70), vec![(0x1000, 4)]);
        assert!(m.reads_of(71).is_empty());
        m.refresh(&[
            (0x1000, ByteBuf::from(vec![9, 9, 9, 9])),
            (0x1000, ByteBuf::from(vec![5])),
            (0x2000, ByteBuf::from(vec![6, 6])),
        ]);
        // SAFETY: the mirrors' bytes.
        unsafe {
            assert_eq!(std::slice::from_raw_parts(input as *const u8, 4), [9; 4]);
            assert_eq!(
                std::slice::from_raw_parts(output as *const u8, 2),
                [0; 2],
                "only what graphs read"
            );
        }
        m.launched(70, event(99));
        m.launched(70, event(98));
        // SAFETY: the graph's copy, done by hand.
        unsafe { std::ptr::copy_nonoverlapping([7u8, 8].as_ptr(), output as *mut u8, 2) };
        let (writes, finished) = m.writes(|e| (e.handle == 99).then_some(true));
        assert!(
            writes.is_empty() && finished.is_empty(),
            "the second launch has not run"
        );
        let (writes, finished) = m.writes(|_| Some(true));
        assert_eq!(writes, vec![(0x2000, ByteBuf::from(vec![7, 8]))]);
        assert_eq!(finished, vec![event(98), event(99)]);
        assert!(m.writes(|_| Some(true)).0.is_empty(), "each once");
        // A launch that failed: its bytes never go.
        m.launched(70, event(97));
        let (writes, finished) = m.writes(|_| Some(false));
        assert!(writes.is_empty());
        assert_eq!(finished, vec![event(97)]);
        // An executable graph of no mirrors, and one unknown, launch none.
        m.instantiated(71, 8);
        assert!(!m.writes_any(71) && !m.writes_any(72));
    }

    #[test]
    fn captures_graphs_and_executable_graphs_keep_their_own_mirrors() {
        let mut m = Mirrors::default();
        // Two captures at once: each graph has its own copies' mirrors.
        m.mirror(0x1000, 8, OUT, None, 1, heap).unwrap();
        m.mirror(0x2000, 8, OUT, None, 2, heap).unwrap();
        m.ended(2, Some(20));
        m.ended(1, Some(10));
        m.instantiated(100, 10);
        m.launched(100, event(1));
        let (writes, _) = m.writes(|_| Some(true));
        assert_eq!(writes.iter().map(|w| w.0).collect::<Vec<_>>(), vec![0x1000]);
        // A graph's handle reused by a capture with no host copies: none.
        m.graph_destroyed(10);
        m.ended(3, Some(10));
        m.instantiated(100, 10);
        assert!(!m.writes_any(100));
        // A failed capture's mirrors belong to no graph.
        m.mirror(0x3000, 8, OUT, None, 4, heap).unwrap();
        m.ended(4, None);
        m.ended(5, Some(30));
        m.instantiated(300, 30);
        assert!(!m.writes_any(300));
        // A reset forgets graphs and pending events.
        m.instantiated(200, 20);
        m.launched(200, event(2));
        m.context_gone();
        assert!(m.pending_libraries().is_empty() && !m.writes_any(200));
        // Each use of a mirror in a capture tells the client again.
        m.take_told();
        m.mirror(0x1000, 8, OUT, None, 6, heap).unwrap();
        assert_eq!(m.take_told().len(), 1);
    }

    #[test]
    fn clones_and_child_graphs_have_their_originals_mirrors() {
        let mut m = Mirrors::default();
        m.mirror(0x1000, 8, OUT, None, 1, heap).unwrap();
        m.ended(1, Some(10));
        // A clone, and a graph with the clone as a child node.
        m.cloned(10, 11);
        m.ended(2, Some(20));
        m.nested(20, 11);
        m.instantiated(200, 20);
        assert!(m.writes_any(200));
        // The original destroyed: the clone keeps its own.
        m.graph_destroyed(10);
        m.instantiated(110, 11);
        assert!(m.writes_any(110));
        // What an executable graph's child node set anew would change.
        m.mirror(0x2000, 8, IN, Some(&[7; 8]), 3, heap).unwrap();
        m.ended(3, Some(30));
        m.ended(4, Some(40));
        m.instantiated(400, 40);
        assert!(m.graph_uses_any(30) && !m.graph_uses_any(40));
        assert!(m.exec_uses_any(200) && !m.exec_uses_any(400));
        // A graph launched into a capture: the captured graph has its
        // copies.
        m.launched_in_capture(6, 400);
        m.launched_in_capture(6, 200);
        m.ended(6, Some(60));
        m.instantiated(600, 60);
        assert!(m.writes_any(600) && m.reads_of(600).is_empty());
        // A capture into an existing graph adds to its mirrors.
        m.mirror(0x3000, 8, IN, Some(&[1; 8]), 5, heap).unwrap();
        m.ended(5, Some(30));
        m.instantiated(300, 30);
        assert_eq!(m.reads_of(300), vec![(0x2000, 8), (0x3000, 8)]);
    }

    #[test]
    fn a_session_mirrors_a_bounded_amount() {
        let mut m = Mirrors::default();
        let err = m
            .mirror(0x1000, MAX_MIRRORED + 1, OUT, None, 1, |_| {
                panic!("not made")
            })
            .unwrap_err();
        assert!(err.contains("over"), "{err}");
        for i in 0..MAX_MIRRORS as u64 {
            m.mirror(i * 8, 1, IN, None, 1, heap)
                .map(|_| ())
                .unwrap_or_else(|e| panic!("{i}: {e}"));
        }
        assert!(m.mirror(1 << 40, 1, IN, None, 1, heap).is_err());
    }
}
