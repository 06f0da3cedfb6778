//! Callbacks: functions of the client's that a library calls later, from a
//! thread of its own (`cudaLaunchHostFunc`'s host function,
//! `cudaStreamAddCallback`'s callback, the driver's `cuLaunchHostFunc`).
//!
//! The client's function cannot run in the server's process, so the client
//! names each (function, data pointer) pair by a number of its own
//! ([`Registry`]). The server gives the library a stand-in: one of a few
//! trampolines, with a [`StandIn`] of its own as the data pointer, which
//! records each call ([`Fired`]) with the callback's other arguments (a
//! stream, a status). The next answer the server sends carries those
//! records, and the client makes the calls ([`Ready::run`]) before the
//! call that got the answer returns, on the thread that made it, in the
//! order the library made them.
//!
//! So a host function runs in the client no later than the call that
//! synchronises with its stream returns (`cudaStreamSynchronize`,
//! `cudaEventSynchronize`, a query that finds the work done), as CUDA
//! promises; unlike CUDA, the stream does not wait for it on the GPU's side
//! (the work after it may start before it has run in the client), and it
//! runs only when the client makes a call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::abi::{ArgClass, RetClass};
use crate::wire::Fired;

/// The most parameters a callback may have.
pub const MAX_PARAMS: usize = 4;

/// A session's stand-ins' calls, until the next answer takes them.
pub type FiredList = Arc<Mutex<Vec<Fired>>>;

/// Checks a callback's shape: 1..=[`MAX_PARAMS`] parameters of 1..=8 bytes,
/// the data pointer (8 bytes) among them.
pub fn check_shape(params: &[u32], data_at: u16) -> Result<(), String> {
    if params.is_empty() || params.len() > MAX_PARAMS {
        return Err(format!(
            "a callback of {} parameters (1 to {MAX_PARAMS} are sent)",
            params.len()
        ));
    }
    if params.get(usize::from(data_at)) != Some(&8) {
        return Err(format!("a callback's data pointer at {data_at}"));
    }
    if let Some(size) = params.iter().find(|s| !(1..=8).contains(*s)) {
        return Err(format!("a callback parameter of {size} bytes"));
    }
    Ok(())
}

/// What the server's trampoline is given as its data pointer: whose
/// callback it stands in for, and where its calls go.
pub struct StandIn {
    id: u64,
    params: Vec<u32>,
    data_at: usize,
    fired: FiredList,
}

impl StandIn {
    /// A stand-in for the client's callback `id` of this shape.
    pub fn new(
        id: u64,
        params: &[u32],
        data_at: u16,
        fired: FiredList,
    ) -> Result<Box<StandIn>, String> {
        check_shape(params, data_at)?;
        Ok(Box::new(StandIn {
            id,
            params: params.to_vec(),
            data_at: usize::from(data_at),
            fired,
        }))
    }

    /// Whether it stands in for a callback of this shape.
    pub fn fits(&self, params: &[u32], data_at: u16) -> bool {
        self.params == params && self.data_at == usize::from(data_at)
    }

    /// The function the library is given in the client's function's place.
    pub fn function(&self) -> u64 {
        TRAMPOLINES[self.data_at] as usize as u64
    }

    /// The data pointer the library is given (the stand-in itself: it must
    /// stay where it is for as long as the library may call it).
    pub fn data(&self) -> u64 {
        std::ptr::from_ref(self) as u64
    }
}

/// The library's call of a stand-in whose data pointer is parameter `K`.
/// Every callback sent has at most [`MAX_PARAMS`] integer parameters, all in
/// registers: a callback of fewer leaves the others' registers as they
/// were, and they are not read.
extern "C" fn trampoline<const K: usize>(a0: u64, a1: u64, a2: u64, a3: u64) {
    let all = [a0, a1, a2, a3];
    // SAFETY: the library passes back the data pointer it was given with
    // this trampoline: a `StandIn` its session keeps until it ends.
    let s = unsafe { &*(all[K] as *const StandIn) };
    let args = s
        .params
        .iter()
        .enumerate()
        .map(|(i, &size)| match i {
            _ if i == K => 0,
            _ if size >= 8 => all[i],
            _ => all[i] & ((1u64 << (size * 8)) - 1),
        })
        .collect();
    s.fired
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Fired { id: s.id, args });
}

type Trampoline = extern "C" fn(u64, u64, u64, u64);
const TRAMPOLINES: [Trampoline; MAX_PARAMS] = [
    trampoline::<0>,
    trampoline::<1>,
    trampoline::<2>,
    trampoline::<3>,
];

/// The client's callbacks, by the numbers it sent for them.
#[derive(Default)]
pub struct Registry {
    ids: HashMap<(u64, u64, u16, Vec<u32>), u64>,
    entries: Vec<Entry>,
}

struct Entry {
    function: u64,
    data: u64,
    params: Vec<u32>,
    data_at: usize,
}

impl Registry {
    /// The number for calling `function` with `data` (the same for the
    /// same pair and shape).
    pub fn id(&mut self, function: u64, data: u64, params: &[u32], data_at: u16) -> u64 {
        let next = self.entries.len() as u64;
        let id = *self
            .ids
            .entry((function, data, data_at, params.to_vec()))
            .or_insert(next);
        if id == next {
            self.entries.push(Entry {
                function,
                data,
                params: params.to_vec(),
                data_at: usize::from(data_at),
            });
        }
        id
    }

    /// The call a record of the server's asks for: `None` for a number
    /// this client never sent, or arguments that do not fit its shape (the
    /// server is not trusted to name a function to call).
    pub fn ready(&self, fired: &Fired) -> Option<Ready> {
        let e = self.entries.get(usize::try_from(fired.id).ok()?)?;
        if fired.args.len() != e.params.len() {
            return None;
        }
        let args = e
            .params
            .iter()
            .zip(&fired.args)
            .enumerate()
            .map(|(i, (&size, &value))| (size, if i == e.data_at { e.data } else { value }))
            .collect();
        Some(Ready {
            function: e.function,
            args,
        })
    }
}

/// A call of a client's callback, ready to be made.
#[derive(Debug)]
pub struct Ready {
    function: u64,
    /// Each argument: its bytes and its value.
    args: Vec<(u32, u64)>,
}

impl Ready {
    /// Makes the call.
    ///
    /// # Safety
    /// The function must be the client's callback of the shape it was
    /// registered with (as [`Registry::ready`] made it).
    pub unsafe fn run(&self) {
        let bytes: Vec<[u8; 8]> = self.args.iter().map(|(_, v)| v.to_le_bytes()).collect();
        let args: Vec<(ArgClass, &[u8])> = self
            .args
            .iter()
            .zip(&bytes)
            .map(|((size, _), b)| (ArgClass::Integer, &b[..*size as usize]))
            .collect();
        // SAFETY: as the caller promises; the registry checked the shape.
        let _ = unsafe {
            crate::abi::call(
                self.function as *const std::ffi::c_void,
                &args,
                RetClass::Void,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SEEN: Mutex<Vec<(u64, u64, u64)>> = Mutex::new(Vec::new());

    extern "C" fn three(stream: u64, status: u32, data: u64) {
        SEEN.lock().unwrap().push((stream, u64::from(status), data));
    }

    #[test]
    fn a_stand_in_records_what_the_library_passes_and_the_client_calls_its_own() {
        let fired: FiredList = Arc::default();
        let mut registry = Registry::default();
        let shape = [8, 4, 8];
        let id = registry.id(three as *const () as u64, 0xdada, &shape, 2);
        assert_eq!(
            registry.id(three as *const () as u64, 0xdada, &shape, 2),
            id
        );
        let stand_in = StandIn::new(id, &shape, 2, Arc::clone(&fired)).unwrap();
        // The library calls the trampoline as a `void (*)(cudaStream_t,
        // cudaError_t, void *)`, garbage above the status's 32 bits.
        // SAFETY: the trampoline's own signature.
        let f: extern "C" fn(u64, u64, u64, u64) =
            unsafe { std::mem::transmute(stand_in.function() as usize) };
        f(0x5700, 0xffff_ffff_0000_0002, stand_in.data(), 0);
        let records = std::mem::take(&mut *fired.lock().unwrap());
        assert_eq!(
            records,
            vec![Fired {
                id,
                args: vec![0x5700, 2, 0]
            }]
        );
        let ready = registry.ready(&records[0]).unwrap();
        // SAFETY: `three` has the registered shape.
        unsafe { ready.run() };
        assert_eq!(SEEN.lock().unwrap().as_slice(), &[(0x5700, 2, 0xdada)]);
        // A number never sent, or the wrong arity: nothing to call.
        assert!(
            registry
                .ready(&Fired {
                    id: 7,
                    args: vec![0, 0, 0]
                })
                .is_none()
        );
        assert!(registry.ready(&Fired { id, args: vec![0] }).is_none());
    }

    #[test]
    fn shapes_outside_what_is_sent_are_refused() {
        assert!(check_shape(&[8], 0).is_ok());
        assert!(check_shape(&[], 0).is_err());
        assert!(check_shape(&[8, 8, 8, 8, 8], 0).is_err());
        assert!(check_shape(&[4, 8], 0).is_err());
        assert!(check_shape(&[8, 16], 0).is_err());
    }
}
