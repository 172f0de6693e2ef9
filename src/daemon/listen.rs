//! The listeners: the Unix socket and the optional TCP port, either bound here from the
//! config or inherited from systemd (socket activation, `LISTEN_FDS`), and the readiness
//! notification sent once they and the store are open.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use nix::sys::socket::{
    getsockname, getsockopt, sockopt, AddressFamily, SockType, SockaddrLike, SockaddrStorage,
};
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::{rustls, TlsAcceptor};
use tracing::warn;

use super::config::Config;
use super::StartError;

/// Sockets passed by the service manager, sorted by kind. Taken once, at start-up.
#[derive(Default)]
pub struct Inherited {
    unix: Option<std::os::unix::net::UnixListener>,
    tcp: Option<std::net::TcpListener>,
}

impl Inherited {
    /// Takes the sockets systemd passed (`LISTEN_FDS`, checked against `LISTEN_PID`) and unsets
    /// those variables. At most one Unix and one TCP stream socket, each already listening.
    ///
    /// # Safety
    /// Changes the environment: call it before any other thread runs.
    pub unsafe fn take() -> Result<Self, StartError> {
        let fds: Vec<RawFd> = sd_notify::listen_fds_and_unset_env()
            .map_err(|e| StartError::Inherited(format!("LISTEN_FDS: {e}")))?
            .collect();
        let mut inherited = Inherited::default();
        for fd in fds {
            // The service manager hands these descriptors to us alone.
            inherited.add(OwnedFd::from_raw_fd(fd))?;
        }
        Ok(inherited)
    }

    fn add(&mut self, fd: OwnedFd) -> Result<(), StartError> {
        use std::os::fd::AsRawFd;
        let bad = |what: &str| StartError::Inherited(format!("fd {}: {what}", fd.as_raw_fd()));
        nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|e| bad(&e.to_string()))?;
        let stream = getsockopt(&fd, sockopt::SockType).is_ok_and(|t| t == SockType::Stream);
        let listening = getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false);
        if !stream || !listening {
            return Err(bad(
                "not a listening stream socket (use ListenStream= without Accept=)",
            ));
        }
        let family = getsockname::<SockaddrStorage>(fd.as_raw_fd())
            .map_err(|e| bad(&e.to_string()))?
            .family();
        match family {
            Some(AddressFamily::Unix) if self.unix.is_none() => self.unix = Some(fd.into()),
            Some(AddressFamily::Inet | AddressFamily::Inet6) if self.tcp.is_none() => {
                self.tcp = Some(fd.into())
            }
            Some(AddressFamily::Unix | AddressFamily::Inet | AddressFamily::Inet6) => {
                return Err(bad(
                    "a second socket of the same kind (rexecd serves one Unix socket and one TCP port)",
                ))
            }
            _ => return Err(bad("neither a Unix nor a TCP socket")),
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.unix.is_none() && self.tcp.is_none()
    }
}

/// The TCP listener, and its TLS settings when it speaks TLS.
pub struct TcpServe {
    pub listener: TcpListener,
    pub addr: SocketAddr,
    pub tls: Option<TlsAcceptor>,
}

/// The open listeners.
pub struct Listeners {
    pub unix: UnixListener,
    /// Where the Unix socket is, for the logs.
    pub unix_path: String,
    /// A socket file this process bound, removed at shutdown. None when systemd owns it.
    pub owned_socket: Option<PathBuf>,
    pub tcp: Option<TcpServe>,
    /// Whether any socket came from the service manager.
    pub activated: bool,
}

impl Listeners {
    /// Uses the inherited sockets, and binds from the config whatever was not inherited.
    pub fn open(config: &Config, inherited: Inherited) -> Result<Self, StartError> {
        let activated = !inherited.is_empty();
        // TCP and TLS first: a bad certificate must not leave a Unix socket file behind.
        let tcp = match (inherited.tcp, config.server.tcp) {
            (Some(l), _) => Some(tcp_serve(config, l)?),
            (None, Some(addr)) => {
                let l = std::net::TcpListener::bind(addr).map_err(|source| StartError::Tcp {
                    addr: addr.to_string(),
                    source,
                })?;
                Some(tcp_serve(config, l)?)
            }
            (None, None) => None,
        };
        let (unix, unix_path, owned_socket) = match inherited.unix {
            Some(l) => {
                let path = l
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                    .unwrap_or_else(|| "(inherited)".into());
                (l, path, None)
            }
            None => {
                let l = bind_unix(config)?;
                let path = config.server.socket.clone();
                (l, path.display().to_string(), Some(path))
            }
        };
        let unix = unix
            .set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(unix))
            .map_err(|source| StartError::Socket {
                path: unix_path.clone(),
                source,
            })?;
        Ok(Self {
            unix,
            unix_path,
            owned_socket,
            tcp,
            activated,
        })
    }
}

/// Checks the plain-HTTP rule against the socket's real address and loads TLS.
fn tcp_serve(config: &Config, l: std::net::TcpListener) -> Result<TcpServe, StartError> {
    let addr = l.local_addr().map_err(|source| StartError::Tcp {
        addr: "(inherited)".into(),
        source,
    })?;
    config.check_plain_tcp(addr)?;
    let tls = tls_acceptor(config)?;
    let listener = l
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(l))
        .map_err(|source| StartError::Tcp {
            addr: addr.to_string(),
            source,
        })?;
    Ok(TcpServe {
        listener,
        addr,
        tls,
    })
}

/// The TLS server settings from `server.tls_cert` and `server.tls_key` (PEM files), if set.
fn tls_acceptor(config: &Config) -> Result<Option<TlsAcceptor>, StartError> {
    let Some((cert, key)) = config.tls() else {
        return Ok(None);
    };
    let err = |path: &Path, e: &dyn std::fmt::Display| {
        StartError::Tls(format!("{}: {e}", path.display()))
    };
    let chain = crate::tls::read_pem_certs(cert).map_err(StartError::Tls)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, &e))?;
    let mut tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| err(key, &e))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(tls))))
}

/// Binds the Unix socket with the configured mode and group. A stale socket file from a
/// previous run is replaced; a live one (another daemon) is an error.
fn bind_unix(config: &Config) -> Result<std::os::unix::net::UnixListener, StartError> {
    let path = &config.server.socket;
    let err = |source| StartError::Socket {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another rexecd is listening on it",
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(err)?;
    let mode = config.socket_mode().unwrap_or(0o660);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    let group = &config.server.socket_group;
    if !group.is_empty() {
        match nix::unistd::Group::from_name(group) {
            Ok(Some(g)) => {
                nix::unistd::chown(path, None, Some(g.gid))
                    .map_err(|e| err(std::io::Error::from_raw_os_error(e as i32)))?;
            }
            _ => warn!(%group, "socket group does not exist; the socket keeps the daemon's group"),
        }
    }
    Ok(listener)
}

/// Tells the service manager (`Type=notify`) the daemon is ready; a no-op without
/// `NOTIFY_SOCKET`.
pub fn notify_ready(status: &str) {
    let states = [
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ];
    if let Err(e) = sd_notify::notify(&states) {
        warn!(error = %e, "could not notify the service manager");
    }
}

/// Tells the service manager the daemon is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_inherited_sockets_by_kind_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let unix = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut inherited = Inherited::default();
        inherited.add(OwnedFd::from(unix)).unwrap();
        inherited.add(OwnedFd::from(tcp)).unwrap();
        assert!(inherited.unix.is_some() && inherited.tcp.is_some());

        let second = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = inherited.add(OwnedFd::from(second)).unwrap_err();
        assert!(err.to_string().contains("second socket"), "{err}");

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = Inherited::default().add(OwnedFd::from(udp)).unwrap_err();
        assert!(err.to_string().contains("not a listening stream"), "{err}");
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(Inherited::default().add(OwnedFd::from(file)).is_err());
    }
}
