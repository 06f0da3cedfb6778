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
//! The server follows which mirrors each graph uses: those made while a
//! capture goes on belong to the graph the capture ends with, an
//! executable graph has its graph's, and a launch runs its executable
//! graph's. Copies added to a graph node by node, or a graph cloned or
//! nested in another, are not followed.

use std::collections::HashMap;

use serde_bytes::ByteBuf;

use crate::wire::Mirrored;

/// An event of a library's (`cudaEvent_t`, `CUevent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// Written by graphs (a copy to the host), else read.
    out: bool,
    /// The server's memory: `len` bytes, alive as long as the session.
    at: *mut u8,
    /// The event recorded after the last launch that writes it, whose
    /// bytes the client has not had yet.
    written: Option<Event>,
    /// Its event, once it has one (made by the library of the first launch
    /// that writes it).
    event: Option<Event>,
}

/// A session's mirrors.
#[derive(Default)]
pub(crate) struct Mirrors {
    list: Vec<Mirror>,
    /// Those made since the capture going on began.
    capture: Vec<usize>,
    /// Those each graph's copies use, by the graph's handle.
    graphs: HashMap<u64, Vec<usize>>,
    /// Those each executable graph's copies use.
    execs: HashMap<u64, Vec<usize>>,
    /// Those made since the last answer.
    told: Vec<Mirrored>,
}

/// The most bytes a session mirrors.
pub(crate) const MAX_MIRRORED: usize = 1 << 32;

impl Mirrors {
    /// The server's address for `len` bytes of the client's at `client`,
    /// read (`out` false) or written by a copy being captured: its mirror,
    /// made with `alloc` the first time. `bytes` (a copy that reads) are
    /// the client's bytes now.
    pub(crate) fn mirror(
        &mut self,
        client: u64,
        len: usize,
        out: bool,
        bytes: Option<&[u8]>,
        alloc: impl FnOnce(usize) -> Option<*mut u8>,
    ) -> Result<u64, String> {
        let found = self
            .list
            .iter()
            .position(|m| m.client == client && m.len == len && m.out == out);
        let i = match found {
            Some(i) => i,
            None => {
                let total: usize = self.list.iter().map(|m| m.len).sum();
                if total.saturating_add(len) > MAX_MIRRORED {
                    return Err(format!(
                        "graphs' host memory over {MAX_MIRRORED} bytes in one session"
                    ));
                }
                let at = alloc(len.max(1)).ok_or("no host memory for a graph's copy")?;
                self.list.push(Mirror {
                    client,
                    len,
                    out,
                    at,
                    written: None,
                    event: None,
                });
                self.told.push(Mirrored {
                    address: client,
                    len: len as u64,
                    out,
                });
                self.list.len() - 1
            }
        };
        let m = &self.list[i];
        if let Some(bytes) = bytes.filter(|b| b.len() == m.len) {
            // SAFETY: the mirror's own `len` bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), m.at, m.len) };
        }
        if !self.capture.contains(&i) {
            self.capture.push(i);
        }
        Ok(m.at as u64)
    }

    /// A capture ended with `graph`: it uses the mirrors made since it
    /// began.
    pub(crate) fn ended(&mut self, graph: u64) {
        let made = std::mem::take(&mut self.capture);
        if !made.is_empty() {
            self.graphs.insert(graph, made);
        }
    }

    /// A capture ended with no graph (it failed): its mirrors belong to
    /// none.
    pub(crate) fn abandoned(&mut self) {
        self.capture.clear();
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

    /// Writes the client's bytes now into the mirrors graphs read: only
    /// into a mirror it was told of, exactly as long.
    pub(crate) fn refresh(&mut self, data: &[(u64, ByteBuf)]) {
        for (client, bytes) in data {
            if let Some(m) = self
                .list
                .iter()
                .find(|m| !m.out && m.client == *client && m.len == bytes.len())
            {
                // SAFETY: the mirror's own `len` bytes.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), m.at, m.len) };
            }
        }
    }

    /// Executable graph `exec` was launched: for each mirror it writes, its
    /// event, made by `make` the first time, is recorded by `record` (after
    /// the launch, on its stream).
    pub(crate) fn launched(
        &mut self,
        exec: u64,
        mut make: impl FnMut() -> Option<Event>,
        mut record: impl FnMut(Event) -> bool,
    ) {
        let Some(used) = self.execs.get(&exec) else {
            return;
        };
        for &i in used {
            let m = &mut self.list[i];
            if !m.out {
                continue;
            }
            if m.event.is_none() {
                m.event = make();
            }
            if let Some(event) = m.event
                && record(event)
            {
                m.written = Some(event);
            }
        }
    }

    /// The bytes of each mirror a launch that has run wrote, for the
    /// client, each once: `done` says whether the launch's event is
    /// complete (`Some(true)`), not yet (`None`), or failed (`Some(false)`:
    /// the bytes are not the graph's, and the failure is the launch's to
    /// report).
    pub(crate) fn writes(
        &mut self,
        mut done: impl FnMut(Event) -> Option<bool>,
    ) -> Vec<(u64, ByteBuf)> {
        let mut out = Vec::new();
        for m in &mut self.list {
            let Some(event) = m.written else {
                continue;
            };
            match done(event) {
                None => {}
                Some(false) => m.written = None,
                Some(true) => {
                    m.written = None;
                    // SAFETY: the mirror's own `len` bytes.
                    let bytes = unsafe { std::slice::from_raw_parts(m.at, m.len) };
                    out.push((m.client, ByteBuf::from(bytes.to_vec())));
                }
            }
        }
        out
    }

    /// The libraries whose events launches not yet returned to the client
    /// were recorded with.
    pub(crate) fn pending_libraries(&self) -> Vec<u16> {
        let mut out: Vec<u16> = self
            .list
            .iter()
            .filter_map(|m| m.written.map(|e| e.library))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The mirrors made since the last answer.
    pub(crate) fn take_told(&mut self) -> Vec<Mirrored> {
        std::mem::take(&mut self.told)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap(len: usize) -> Option<*mut u8> {
        Some(Box::leak(vec![0u8; len].into_boxed_slice()).as_mut_ptr())
    }

    #[test]
    fn a_graph_launched_refreshes_what_it_reads_and_returns_what_it_wrote_once_run() {
        let mut m = Mirrors::default();
        let input = m
            .mirror(0x1000, 4, false, Some(&[1, 2, 3, 4]), heap)
            .unwrap();
        let output = m.mirror(0x2000, 2, true, None, heap).unwrap();
        // The same memory in the same capture: the same mirror.
        assert_eq!(m.mirror(0x1000, 4, false, None, heap).unwrap(), input);
        assert_eq!(m.take_told().len(), 2);
        m.ended(7);
        m.instantiated(70, 7);
        m.refresh(&[
            (0x1000, ByteBuf::from(vec![9, 9, 9, 9])),
            (0x1000, ByteBuf::from(vec![5])),
        ]);
        // SAFETY: the mirror's 4 bytes.
        assert_eq!(
            unsafe { std::slice::from_raw_parts(input as *const u8, 4) },
            [9; 4]
        );
        let event = |handle| Event { library: 0, handle };
        let mut events = 0;
        m.launched(
            70,
            || {
                events += 1;
                Some(event(99))
            },
            |e| e.handle == 99,
        );
        m.launched(70, || Some(event(98)), |e| e.handle == 99);
        assert_eq!(events, 1, "one event per mirror");
        // SAFETY: the graph's copy, done by hand.
        unsafe { std::ptr::copy_nonoverlapping([7u8, 8].as_ptr(), output as *mut u8, 2) };
        assert!(m.writes(|_| None).is_empty(), "not run yet");
        assert_eq!(
            m.writes(|e| Some(e.handle == 99)),
            vec![(0x2000, ByteBuf::from(vec![7, 8]))]
        );
        assert!(m.writes(|_| Some(true)).is_empty(), "each once");
        // A launch that failed: its bytes never go.
        m.launched(70, || None, |_| true);
        assert!(m.writes(|_| Some(false)).is_empty());
        assert!(m.writes(|_| Some(true)).is_empty(), "dropped");
        // An executable graph of no mirrors, and one unknown, launch none.
        m.instantiated(71, 8);
        m.launched(71, || panic!("no event"), |_| panic!("no record"));
        m.launched(72, || panic!("no event"), |_| panic!("no record"));
    }

    #[test]
    fn a_session_mirrors_a_bounded_amount() {
        let mut m = Mirrors::default();
        let err = m
            .mirror(0x1000, MAX_MIRRORED + 1, true, None, |_| panic!("not made"))
            .unwrap_err();
        assert!(err.contains("over"), "{err}");
    }
}
