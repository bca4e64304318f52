//! Long operations off the card's lock: a link thread hands an RSA key generation that
//! passed its checks (`Hsm::execute_start`) to the card's keygen worker, serves the other
//! sessions of its link meanwhile, and finishes it (`Hsm::finish_keygen`, under the card's
//! lock) when the worker is done. Requests of the same session that come after it wait
//! behind it ([`LinkJobs::parked`]), so each session still sees its answers in order.
//!
//! [`KEYGEN_WORKERS`] threads search primes, for the whole card: the jobs of every link wait
//! in one queue, each holding a seed. A session has at most one job out, so the queue is
//! bounded by the sessions the links may open; the requests waiting behind a job by
//! [`MAX_PARKED`] per session.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use gmhsm_firmware::hsm::{KeygenDone, KeygenJob};
use gmhsm_proto::frame::FrameHeader;

/// Prime searches at once, card-wide (the simulated board has two cores: one for the
/// requests, one for the nonce engine and this).
pub(crate) const KEYGEN_WORKERS: usize = 1;

/// Most requests of one session that wait behind its job; one more is answered `Busy`. The
/// daemon sends at most its in-flight bound per connection (32 by default) before it waits
/// for answers, so only a peer that does not wait reaches this.
pub const MAX_PARKED: usize = 256;

/// A job, and where its result goes.
struct Work {
    job: KeygenJob,
    header: FrameHeader,
    reply: Sender<Finished>,
    wake: Arc<UnixStream>,
}

/// A computed job, for the link that drew it.
pub(crate) struct Finished {
    pub header: FrameHeader,
    pub done: KeygenDone,
}

/// The card's keygen workers: where jobs are queued.
pub(crate) struct Workers(Mutex<Sender<Work>>);

impl Workers {
    pub fn start() -> io::Result<Workers> {
        let (tx, rx) = channel::<Work>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..KEYGEN_WORKERS {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("card-keygen-{i}")).spawn(move || work(&rx))?;
        }
        Ok(Workers(Mutex::new(tx)))
    }
}

/// A worker: compute jobs until the queue goes; hand each result to its link and wake it
/// (a link that went meanwhile drops the result, zeroizing the key).
fn work(rx: &Mutex<Receiver<Work>>) {
    loop {
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(w) = next else { return };
        let done = w.job.compute();
        if w.reply.send(Finished { header: w.header, done }).is_ok() {
            let _ = (&*w.wake).write(&[1]);
        }
    }
}

/// One link's jobs out and the requests waiting behind them.
pub(crate) struct LinkJobs {
    reply: Sender<Finished>,
    finished: Receiver<Finished>,
    wake_tx: Arc<UnixStream>,
    wake_rx: UnixStream,
    /// Sessions with a job out, and their requests that came after it, in order.
    pub parked: HashMap<u64, VecDeque<crate::link::Item>>,
}

impl LinkJobs {
    pub fn new() -> io::Result<LinkJobs> {
        let (reply, finished) = channel();
        let (tx, rx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        Ok(LinkJobs { reply, finished, wake_tx: Arc::new(tx), wake_rx: rx, parked: HashMap::new() })
    }

    /// Queue `job` for the workers; the session's later requests wait until it is finished.
    pub fn submit(&mut self, workers: &Workers, header: FrameHeader, job: KeygenJob) -> io::Result<()> {
        self.parked.insert(job.session(), VecDeque::new());
        let work = Work { job, header, reply: self.reply.clone(), wake: self.wake_tx.clone() };
        let queue = workers.0.lock().map_err(|_| io::Error::other("keygen queue poisoned"))?;
        queue.send(work).map_err(|_| io::Error::other("keygen workers gone"))
    }

    /// Queue `item` behind its session's job; `Err(its header)` (the item dropped) when
    /// [`MAX_PARKED`] already wait.
    pub fn park(&mut self, item: crate::link::Item) -> Result<(), FrameHeader> {
        match self.parked.get_mut(&item.2) {
            Some(waiting) if waiting.len() < MAX_PARKED => {
                waiting.push_back(item);
                Ok(())
            }
            _ => Err(item.0),
        }
    }

    /// The jobs computed so far (after a wake-up).
    pub fn take_finished(&mut self) -> Vec<Finished> {
        let mut sink = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
        self.finished.try_iter().collect()
    }

    /// Block until the link has data or a job is finished; `true`: the link is readable.
    pub fn wait(&self, link: &UnixStream) -> io::Result<bool> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds =
            [PollFd::new(link.as_fd(), PollFlags::POLLIN), PollFd::new(self.wake_rx.as_fd(), PollFlags::POLLIN)];
        loop {
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        // Hang-up and errors count as readable: the read then says what happened.
        Ok(fds[0].revents().is_some_and(|r| !r.is_empty()))
    }
}
