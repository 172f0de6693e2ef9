//! Stand-ins for the outside world, on loopback and Unix sockets only: a Docker socket proxy
//! that can be cut and restored, and a "registry" that accepts connections and never answers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// Forwards a Unix socket to the real Docker socket. `down()` drops the listener and every
/// open connection, as if dockerd had died; `up()` brings it back.
pub struct DockerProxy {
    path: PathBuf,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl DockerProxy {
    pub fn start(path: &Path) -> Self {
        let mut p = Self {
            path: path.to_path_buf(),
            accept: None,
            conns: Default::default(),
        };
        p.up();
        p
    }

    pub fn up(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).unwrap();
        let conns = self.conns.clone();
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut docker) = UnixStream::connect("/var/run/docker.sock").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut docker).await;
                    }
                });
                conns.lock().unwrap().push(task);
            }
        }));
    }

    pub fn down(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// A TCP port that accepts and then says nothing: a registry pull from it hangs, which keeps
/// a creation in `pulling` for as long as a test needs.
pub struct Blackhole {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Blackhole {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    held.push(c);
                }
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// An image reference whose pull never completes.
    pub fn image(&self) -> String {
        format!(
            "127.0.0.1:{}/rexec/hang:{}",
            self.port,
            uuid::Uuid::new_v4().simple()
        )
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
