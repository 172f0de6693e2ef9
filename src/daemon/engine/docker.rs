//! The Docker implementation of [`Engine`], on bollard.

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerUpdateBody, EventMessageTypeEnum, HostConfig,
    NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    ContainerArchiveInfoOptions, CreateContainerOptions, CreateImageOptions,
    DownloadFromContainerOptions, EventsOptions, InspectContainerOptions, ListContainersOptions,
    ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions, ResizeExecOptions,
    StopContainerOptions, UploadToContainerOptions,
};
use bollard::Docker;
use futures_util::stream::{BoxStream, StreamExt};
use tokio::sync::RwLock;

use super::*;

/// Seconds bollard waits for an answer's headers. Pulls stream past this; it only bounds a
/// hung engine.
const REQUEST_TIMEOUT_SECS: u64 = 120;

const DB_ID_LABEL: &str = "rexec.db_id";

/// Go's `os.ModeDir` and `os.ModeSymlink`, as Docker's path stat reports modes.
const GO_MODE_DIR: u32 = 1 << 31;
const GO_MODE_SYMLINK: u32 = 1 << 27;

pub struct DockerEngine {
    socket: String,
    /// The client, replaced once the API version has been negotiated with the engine.
    client: RwLock<Docker>,
    negotiated: std::sync::atomic::AtomicBool,
}

impl DockerEngine {
    pub fn new(socket: &std::path::Path) -> Result<Self> {
        let socket = socket.to_string_lossy().into_owned();
        let client = Self::connect(&socket)?;
        Ok(Self {
            socket,
            client: RwLock::new(client),
            negotiated: Default::default(),
        })
    }

    fn connect(socket: &str) -> Result<Docker> {
        // connect_with_unix does not require the socket to exist yet: the engine may come up
        // after rexecd.
        Docker::connect_with_unix(socket, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            .map_err(classify)
    }

    async fn docker(&self) -> Docker {
        self.client.read().await.clone()
    }
}

/// The one place Docker errors become [`EngineError`]s: by HTTP status or transport kind.
fn classify(e: BollardError) -> EngineError {
    use BollardError::*;
    match e {
        DockerResponseServerError {
            status_code,
            message,
        } => match status_code {
            404 => EngineError::NotFound(message),
            409 => EngineError::Conflict(message),
            400..=499 => EngineError::Rejected {
                status: status_code,
                message,
            },
            _ => EngineError::Other(format!("status {status_code}: {message}")),
        },
        DockerStreamError { error } => EngineError::PullFailed(error),
        e @ (IOError { .. }
        | HyperLegacyError { .. }
        | SocketNotFoundError(_)
        | RequestTimeoutError
        | HttpClientError { .. }) => EngineError::Unavailable(e.to_string()),
        other => EngineError::Other(other.to_string()),
    }
}

fn label_filter(label: &str) -> Option<HashMap<String, Vec<String>>> {
    Some(HashMap::from([(
        "label".to_string(),
        vec![label.to_string()],
    )]))
}

fn ok_if_missing(r: std::result::Result<(), BollardError>) -> Result<()> {
    match r.map_err(classify) {
        Err(EngineError::NotFound(_)) => Ok(()),
        other => other,
    }
}

#[async_trait]
impl Engine for DockerEngine {
    async fn info(&self) -> Result<EngineInfo> {
        if !self.negotiated.load(std::sync::atomic::Ordering::Relaxed) {
            let fresh = Self::connect(&self.socket)?;
            let negotiated = fresh.negotiate_version().await.map_err(classify)?;
            *self.client.write().await = negotiated;
            self.negotiated
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let docker = self.docker().await;
        let info = docker.info().await.map_err(classify)?;
        let backing = info
            .driver_status
            .unwrap_or_default()
            .into_iter()
            .find(|kv| kv.first().map(String::as_str) == Some("Backing Filesystem"))
            .and_then(|kv| kv.get(1).cloned())
            .unwrap_or_default();
        let v = docker.client_version();
        Ok(EngineInfo {
            api_version: format!("{}.{}", v.major_version, v.minor_version),
            server_version: info.server_version.unwrap_or_default(),
            ncpu: info.ncpu.unwrap_or(1).max(1) as u32,
            storage_driver: info.driver.unwrap_or_default(),
            backing_filesystem: backing,
        })
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        match self
            .docker()
            .await
            .inspect_image(image)
            .await
            .map_err(classify)
        {
            Ok(_) => Ok(true),
            Err(EngineError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn pull(&self, image: &str, progress: ProgressFn<'_>) -> Result<()> {
        let docker = self.docker().await;
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let mut stream = docker.create_image(Some(options), None, None);
        // Per-layer (current, total): Docker reports each layer's download separately.
        let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(classify)?;
            if let Some(detail) = info.error_detail {
                return Err(EngineError::PullFailed(detail.message.unwrap_or_default()));
            }
            let (Some(id), Some(detail)) = (info.id, info.progress_detail) else {
                continue;
            };
            if let (Some(cur), Some(total)) = (detail.current, detail.total) {
                if total > 0 {
                    let entry = layers.entry(id).or_default();
                    *entry = (cur.max(0) as u64, total as u64);
                    progress(PullProgress {
                        current: layers.values().map(|l| l.0).sum(),
                        total: layers.values().map(|l| l.1).sum(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn ensure_network(&self, name: &str, labels: &HashMap<String, String>) -> Result<()> {
        let docker = self.docker().await;
        match docker.inspect_network(name, None).await.map_err(classify) {
            Ok(_) => return Ok(()),
            Err(EngineError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        match docker.create_network(request).await.map_err(classify) {
            Ok(_) | Err(EngineError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_volume(&self, name: &str, labels: &HashMap<String, String>) -> Result<()> {
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        self.docker()
            .await
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn volume_exists(&self, name: &str) -> Result<bool> {
        match self
            .docker()
            .await
            .inspect_volume(name)
            .await
            .map_err(classify)
        {
            Ok(_) => Ok(true),
            Err(EngineError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let options = RemoveVolumeOptions { force: true };
        ok_if_missing(self.docker().await.remove_volume(name, Some(options)).await)
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let host_config = HostConfig {
            memory: Some(spec.memory_bytes),
            memory_swap: Some(spec.memory_bytes),
            nano_cpus: Some(spec.nano_cpus),
            pids_limit: Some(spec.pids_limit),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(spec.cap_add.clone()),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            privileged: Some(false),
            init: Some(spec.init),
            binds: Some(vec![format!("{}:{}", spec.volume, spec.home)]),
            network_mode: Some(spec.network.clone()),
            storage_opt: spec
                .disk_bytes
                .map(|b| HashMap::from([("size".to_string(), b.to_string())])),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            hostname: Some(spec.hostname.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone()),
            entrypoint: Some(spec.entrypoint.clone()),
            cmd: Some(spec.cmd.clone()),
            working_dir: Some(spec.home.clone()),
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let created = self
            .docker()
            .await
            .create_container(Some(options), body)
            .await
            .map_err(classify)?;
        Ok(created.id)
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.docker()
            .await
            .start_container(id, None)
            .await
            .map_err(classify)
    }

    async fn stop(&self, id: &str, timeout_seconds: u32) -> Result<()> {
        let options = StopContainerOptions {
            t: Some(timeout_seconds as i32),
            ..Default::default()
        };
        self.docker()
            .await
            .stop_container(id, Some(options))
            .await
            .map_err(classify)
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        ok_if_missing(
            self.docker()
                .await
                .remove_container(id, Some(options))
                .await,
        )
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerState>> {
        let options = InspectContainerOptions { size: false };
        match self
            .docker()
            .await
            .inspect_container(id, Some(options))
            .await
            .map_err(classify)
        {
            Ok(c) => Ok(Some(ContainerState {
                id: c.id.unwrap_or_default(),
                running: c.state.and_then(|s| s.running).unwrap_or(false),
                ip_address: c
                    .network_settings
                    .and_then(|n| n.networks)
                    .and_then(|nets| nets.into_values().find_map(|e| e.ip_address))
                    .filter(|ip| !ip.is_empty()),
            })),
            Err(EngineError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_containers(&self, label: &str) -> Result<Vec<ManagedContainer>> {
        let options = ListContainersOptions {
            all: true,
            filters: label_filter(label),
            ..Default::default()
        };
        let list = self
            .docker()
            .await
            .list_containers(Some(options))
            .await
            .map_err(classify)?;
        Ok(list
            .into_iter()
            .map(|c| ManagedContainer {
                id: c.id.unwrap_or_default(),
                db_id: c.labels.and_then(|mut l| l.remove(DB_ID_LABEL)),
                running: c.state.map(|s| s.to_string()) == Some("running".into()),
            })
            .collect())
    }

    async fn list_volumes(&self, label: &str) -> Result<Vec<ManagedVolume>> {
        let options = ListVolumesOptions {
            filters: label_filter(label),
        };
        let list = self
            .docker()
            .await
            .list_volumes(Some(options))
            .await
            .map_err(classify)?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|mut v| ManagedVolume {
                db_id: v.labels.remove(DB_ID_LABEL),
                name: v.name,
            })
            .collect())
    }

    async fn update_resources(&self, id: &str, memory_bytes: i64, nano_cpus: i64) -> Result<()> {
        let body = ContainerUpdateBody {
            memory: Some(memory_bytes),
            memory_swap: Some(memory_bytes),
            nano_cpus: Some(nano_cpus),
            ..Default::default()
        };
        self.docker()
            .await
            .update_container(id, body)
            .await
            .map_err(classify)
    }

    async fn exec_start(&self, container: &str, spec: &ExecSpec) -> Result<ExecSession> {
        let docker = self.docker().await;
        let options = CreateExecOptions {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(spec.tty),
            env: Some(spec.env.clone()),
            cmd: Some(spec.cmd.clone()),
            working_dir: Some(spec.workdir.clone()),
            ..Default::default()
        };
        let created = docker
            .create_exec(container, options)
            .await
            .map_err(classify)?;
        if spec.tty {
            return self.start_tty_exec(&docker, created.id).await;
        }
        let start = StartExecOptions {
            detach: false,
            tty: spec.tty,
            // Docker frames are at most 32 KiB; room for one without splitting.
            output_capacity: Some(64 * 1024),
        };
        match docker
            .start_exec(&created.id, Some(start))
            .await
            .map_err(classify)?
        {
            StartExecResults::Attached { output, input } => Ok(ExecSession {
                id: created.id,
                output: output
                    .filter_map(|r| async move {
                        match r {
                            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                                Some(Ok(ExecChunk::Stdout(message)))
                            }
                            Ok(LogOutput::StdErr { message }) => {
                                Some(Ok(ExecChunk::Stderr(message)))
                            }
                            Ok(LogOutput::StdIn { .. }) => None,
                            Err(e) => Some(Err(classify(e))),
                        }
                    })
                    .boxed(),
                input,
            }),
            StartExecResults::Detached => Err(EngineError::Other("exec started detached".into())),
        }
    }

    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecState> {
        let e = self
            .docker()
            .await
            .inspect_exec(exec_id)
            .await
            .map_err(classify)?;
        Ok(ExecState {
            running: e.running.unwrap_or(false),
            exit_code: e.exit_code,
            pid: e.pid.filter(|p| *p > 0),
        })
    }

    async fn exec_resize(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()> {
        let options = ResizeExecOptions {
            w: i32::from(cols),
            h: i32::from(rows),
        };
        self.docker()
            .await
            .resize_exec(exec_id, options)
            .await
            .map_err(classify)
    }

    async fn path_stat(&self, container: &str, path: &str) -> Result<Option<PathStat>> {
        let options = ContainerArchiveInfoOptions {
            path: path.to_string(),
        };
        match self
            .docker()
            .await
            .get_container_archive_info(container, Some(options))
            .await
            .map_err(classify)
        {
            Ok(s) => Ok(Some(PathStat {
                name: s.name,
                size: s.size.max(0) as u64,
                mode: s.file_mode & 0o7777,
                is_dir: s.file_mode & GO_MODE_DIR != 0,
                is_symlink: s.file_mode & GO_MODE_SYMLINK != 0,
                link_target: s.link_target,
                modified: s.modification_time,
            })),
            Err(EngineError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn download(
        &self,
        container: &str,
        path: &str,
    ) -> BoxStream<'static, Result<bytes::Bytes>> {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        self.docker()
            .await
            .download_from_container(container, Some(options))
            .map(|r| r.map_err(classify))
            .boxed()
    }

    async fn upload(
        &self,
        container: &str,
        dir: &str,
        tar: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> Result<()> {
        let options = UploadToContainerOptions {
            path: dir.to_string(),
            ..Default::default()
        };
        self.docker()
            .await
            .upload_to_container(container, Some(options), bollard::body_try_stream(tar))
            .await
            .map_err(classify)
    }

    async fn events(&self, label: &str, since: i64) -> BoxStream<'static, Result<EngineEvent>> {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![label.to_string()]),
            (
                "event".to_string(),
                vec!["start".into(), "die".into(), "destroy".into()],
            ),
        ]);
        let options = EventsOptions {
            filters: Some(filters),
            since: Some(since.to_string()),
            ..Default::default()
        };
        let docker = self.docker().await;
        follow_events(docker, options).boxed()
    }
}

impl DockerEngine {
    /// Starts a TTY exec on a raw upgraded connection. bollard's exec decoder guesses the
    /// stream format from the first byte of each read (a byte 0-2 is taken for a multiplex
    /// header), which stalls a TTY whose output starts with such a byte; a TTY stream has no
    /// framing at all, so it is read as plain bytes here.
    async fn start_tty_exec(&self, docker: &Docker, id: String) -> Result<ExecSession> {
        use http_body_util::Full;
        use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
        use hyper_util::rt::TokioIo;
        let unavailable = |e: &dyn std::fmt::Display| EngineError::Unavailable(e.to_string());
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| unavailable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(&e))?;
        tokio::spawn(conn.with_upgrades());
        let v = docker.client_version();
        let req = hyper::Request::post(format!(
            "/v{}.{}/exec/{id}/start",
            v.major_version, v.minor_version
        ))
        .header(HOST, "docker")
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "tcp")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(bytes::Bytes::from_static(
            br#"{"Detach":false,"Tty":true}"#,
        )))
        .map_err(|e| EngineError::Other(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unavailable(&e))?;
        match resp.status().as_u16() {
            101 | 200 => {}
            404 => return Err(EngineError::NotFound("exec".into())),
            409 => return Err(EngineError::Conflict("exec".into())),
            s => return Err(EngineError::Other(format!("exec start answered {s}"))),
        }
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|e| unavailable(&e))?;
        let (read, write) = tokio::io::split(TokioIo::new(upgraded));
        let output = tokio_util::io::ReaderStream::with_capacity(read, 64 * 1024)
            .map(|r| {
                r.map(ExecChunk::Stdout)
                    .map_err(|e| EngineError::Unavailable(e.to_string()))
            })
            .boxed();
        Ok(ExecSession {
            id,
            output,
            input: Box::pin(write),
        })
    }
}

fn follow_events(
    docker: Docker,
    options: EventsOptions,
) -> impl futures_util::Stream<Item = Result<EngineEvent>> + Send + 'static {
    futures_util::stream::unfold(
        (docker.events(Some(options)).boxed(), docker),
        |(mut inner, docker)| async move {
            loop {
                let msg = match inner.next().await? {
                    Ok(m) => m,
                    Err(e) => return Some((Err(classify(e)), (inner, docker))),
                };
                if msg.typ != Some(EventMessageTypeEnum::CONTAINER) {
                    continue;
                }
                let kind = match msg.action.as_deref() {
                    Some("start") => EngineEventKind::Started,
                    Some("die") => EngineEventKind::Died,
                    Some("destroy") => EngineEventKind::Destroyed,
                    _ => continue,
                };
                let Some(actor) = msg.actor else { continue };
                let event = EngineEvent {
                    container_id: actor.id.unwrap_or_default(),
                    db_id: actor.attributes.and_then(|mut a| a.remove(DB_ID_LABEL)),
                    kind,
                };
                return Some((Ok(event), (inner, docker)));
            }
        },
    )
}
