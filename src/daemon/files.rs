//! Files in a container: upload, download, listing, mkdir, delete. Everything goes through
//! Docker's archive API (or an argv exec), so paths resolve inside the container's own
//! filesystem, symlinks included: the host's files are out of reach by construction.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use tokio_tar::{Archive, Builder, EntryType, Header};
use tokio_util::io::{ReaderStream, StreamReader};

use super::auth::User;
use super::engine::{Engine, PathStat};
use super::error::{Error, Result};
use super::exec::{self, Exec};
use super::registry::Registry;
use super::spec::HOME;
use crate::api;

/// Uploads above this are refused with 413.
pub const MAX_UPLOAD: u64 = 100 * 1024 * 1024;
/// A listing stops after this many entries (and says so).
const MAX_LIST: usize = 10_000;
/// Symlinks followed for a download before giving up.
const MAX_LINKS: usize = 8;

/// An absolute, lexically clean path inside the container: relative paths start at
/// `/home/user`, `.` and `..` are resolved (never above `/`).
pub fn clean_path(raw: Option<&str>) -> Result<String> {
    let raw = raw
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::BadRequest("path parameter required".into()))?;
    if raw.contains('\0') {
        return Err(Error::BadRequest("invalid path".into()));
    }
    let joined = if raw.starts_with('/') {
        raw.to_string()
    } else {
        format!("{HOME}/{raw}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// `name` inside the clean absolute directory `dir`.
fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// A file name from an upload: one path component, nothing that walks.
pub fn clean_file_name(name: &str) -> Result<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty() || base == "." || base == ".." || base.contains('\0') || base.len() > 255 {
        return Err(Error::BadRequest("invalid file name".into()));
    }
    Ok(base.to_string())
}

/// A file being downloaded.
pub struct Download {
    pub name: String,
    pub size: u64,
    pub mode: u32,
    pub body: BoxStream<'static, std::io::Result<Bytes>>,
}

pub struct Files {
    registry: Arc<Registry>,
    engine: Arc<dyn Engine>,
    exec: Arc<Exec>,
    spool: PathBuf,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Files {
    pub fn new(
        registry: Arc<Registry>,
        engine: Arc<dyn Engine>,
        exec: Arc<Exec>,
        spool: PathBuf,
    ) -> Self {
        Self {
            registry,
            engine,
            exec,
            spool,
        }
    }

    pub fn ensure_running(&self, user: &User, key: &str) -> Result<()> {
        exec::running(&self.registry, user, key).map(|_| ())
    }

    /// The running container to work in; file work counts as use.
    async fn container(&self, user: &User, key: &str) -> Result<String> {
        let (rec, docker_id) = exec::running(&self.registry, user, key)?;
        self.registry.touch(&rec.db_id).await;
        Ok(docker_id)
    }

    /// Where an upload is spooled (on disk, never in memory) before it goes to Docker.
    pub fn spool_file(&self) -> std::io::Result<(PathBuf, std::fs::File)> {
        std::fs::create_dir_all(&self.spool)?;
        let path = self
            .spool
            .join(format!("upload-{}", uuid::Uuid::new_v4().simple()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((path, file))
    }

    async fn stat(&self, docker_id: &str, path: &str) -> Result<Option<PathStat>> {
        Ok(self.engine.path_stat(docker_id, path).await?)
    }

    /// Follows symlinks (inside the container) to what they name.
    async fn resolve(&self, docker_id: &str, mut path: String) -> Result<(String, PathStat)> {
        for _ in 0..=MAX_LINKS {
            let stat = self
                .stat(docker_id, &path)
                .await?
                .ok_or(Error::NotFound("file"))?;
            if !stat.is_symlink {
                return Ok((path, stat));
            }
            let target = if stat.link_target.starts_with('/') {
                stat.link_target.clone()
            } else {
                format!("{}/{}", parent(&path), stat.link_target)
            };
            path = clean_path(Some(&target))?;
        }
        Err(Error::BadRequest(
            "too many levels of symbolic links".into(),
        ))
    }

    pub async fn download(&self, user: &User, key: &str, path: Option<&str>) -> Result<Download> {
        let path = clean_path(path)?;
        let docker_id = self.container(user, key).await?;
        let (path, stat) = self.resolve(&docker_id, path).await?;
        if stat.is_dir {
            return Err(Error::BadRequest("path is a directory".into()));
        }
        let tar = self.engine.download(&docker_id, &path).await;
        let reader = StreamReader::new(tar.map(|r| r.map_err(io_err)));
        let mut entries = Archive::new(reader)
            .entries()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let entry = entries
            .next()
            .await
            .ok_or(Error::NotFound("file"))?
            .map_err(|e| Error::Internal(format!("reading the archive: {e}")))?;
        if entry.header().entry_type() != EntryType::Regular {
            return Err(Error::BadRequest("path is not a regular file".into()));
        }
        Ok(Download {
            name: stat.name,
            size: stat.size,
            mode: stat.mode,
            body: ReaderStream::new(entry).boxed(),
        })
    }

    pub async fn list(&self, user: &User, key: &str, path: Option<&str>) -> Result<api::FileList> {
        let path = clean_path(path)?;
        let docker_id = self.container(user, key).await?;
        let (path, stat) = self.resolve(&docker_id, path).await?;
        if !stat.is_dir {
            return Err(Error::BadRequest("path is not a directory".into()));
        }
        let tar = self.engine.download(&docker_id, &path).await;
        let reader = StreamReader::new(tar.map(|r| r.map_err(io_err)));
        let mut entries = Archive::new(reader)
            .entries()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let mut files = Vec::new();
        let mut truncated = false;
        while let Some(entry) = entries.next().await {
            let entry = entry.map_err(|e| Error::Internal(format!("reading the archive: {e}")))?;
            let h = entry.header();
            let full = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            // The archive's first component is the directory itself; keep its children.
            let mut parts = full.trim_end_matches('/').splitn(2, '/');
            let (_, Some(rel)) = (parts.next(), parts.next()) else {
                continue;
            };
            if rel.is_empty() || rel.contains('/') {
                continue;
            }
            if files.len() == MAX_LIST {
                truncated = true;
                break;
            }
            let is_dir = h.entry_type() == EntryType::Directory;
            let mtime = h.mtime().unwrap_or(0) as i64;
            files.push(api::FileEntry {
                name: rel.to_string(),
                path: join(&path, rel),
                size: if is_dir { 0 } else { h.size().unwrap_or(0) },
                mode: format!("{:04o}", h.mode().unwrap_or(0) & 0o7777),
                modified: super::clock::rfc3339(mtime * 1000),
                is_dir,
                is_symlink: h.entry_type() == EntryType::Symlink,
            });
        }
        files.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then(a.name.cmp(&b.name)));
        Ok(api::FileList {
            count: files.len(),
            path,
            files,
            truncated,
        })
    }

    /// Sends a spooled upload into directory `dir` as `name`.
    pub async fn upload(
        &self,
        user: &User,
        key: &str,
        dir: Option<&str>,
        name: &str,
        spooled: &std::path::Path,
        size: u64,
    ) -> Result<api::UploadResponse> {
        let dir = clean_path(dir.or(Some(HOME)))?;
        let name = clean_file_name(name)?;
        let docker_id = self.container(user, key).await?;
        let (dir, stat) = self.resolve(&docker_id, dir).await.map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound("directory"),
            e => e,
        })?;
        if !stat.is_dir {
            return Err(Error::BadRequest("path is not a directory".into()));
        }
        let file = tokio::fs::File::open(spooled)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (writer, reader) = tokio::io::duplex(64 * 1024);
        let entry_name = name.clone();
        let build = tokio::spawn(async move {
            let mut tar = Builder::new(writer);
            let mut header = Header::new_gnu();
            header.set_entry_type(EntryType::Regular);
            header.set_size(size);
            header.set_mode(0o644);
            header.set_mtime(super::clock::now_ms() as u64 / 1000);
            tar.append_data(&mut header, &entry_name, file).await?;
            tar.finish().await?;
            Ok::<_, std::io::Error>(())
        });
        let sent = self
            .engine
            .upload(&docker_id, &dir, ReaderStream::new(reader).boxed())
            .await;
        let built = build.await.map_err(|e| Error::Internal(e.to_string()))?;
        sent?;
        built.map_err(|e| Error::Internal(format!("building the archive: {e}")))?;
        let path = join(&dir, &name);
        Ok(api::UploadResponse {
            message: "file uploaded successfully".into(),
            filename: name,
            path,
            size,
        })
    }

    pub async fn mkdir(
        &self,
        user: &User,
        key: &str,
        path: Option<&str>,
    ) -> Result<api::PathResponse> {
        let path = clean_path(path)?;
        self.run(
            user,
            key,
            vec!["mkdir".into(), "-p".into(), "--".into(), path.clone()],
        )
        .await?;
        Ok(api::PathResponse {
            message: "directory created".into(),
            path,
        })
    }

    pub async fn delete(
        &self,
        user: &User,
        key: &str,
        path: Option<&str>,
    ) -> Result<api::PathResponse> {
        let path = clean_path(path)?;
        if path == "/" {
            return Err(Error::BadRequest("refusing to delete /".into()));
        }
        let docker_id = self.container(user, key).await?;
        self.stat(&docker_id, &path)
            .await?
            .ok_or(Error::NotFound("file"))?;
        self.run(
            user,
            key,
            vec!["rm".into(), "-rf".into(), "--".into(), path.clone()],
        )
        .await?;
        Ok(api::PathResponse {
            message: "deleted".into(),
            path,
        })
    }

    /// An argv (no shell) in the container; a non-zero exit is reported with its stderr.
    async fn run(&self, user: &User, key: &str, cmd: Vec<String>) -> Result<()> {
        let req = api::ExecRequest {
            cmd: Some(cmd),
            timeout_seconds: Some(60),
            ..Default::default()
        };
        let r = self.exec.run(user, key, req).await?;
        if r.exit_code != 0 {
            let why = r.stderr.lines().last().unwrap_or("failed").to_string();
            return Err(Error::BadRequest(why));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_inside_the_container() {
        assert_eq!(
            clean_path(Some("notes.txt")).unwrap(),
            "/home/user/notes.txt"
        );
        assert_eq!(
            clean_path(Some("/etc/../../../etc/passwd")).unwrap(),
            "/etc/passwd"
        );
        assert_eq!(clean_path(Some("a/./b/../c")).unwrap(), "/home/user/a/c");
        assert_eq!(clean_path(Some("../../..")).unwrap(), "/");
        assert_eq!(clean_path(Some("/")).unwrap(), "/");
        assert!(clean_path(None).is_err());
        assert!(clean_path(Some("")).is_err());
        assert!(clean_path(Some("a\0b")).is_err());
    }

    #[test]
    fn joins_never_double_the_slash() {
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/home/user", "x"), "/home/user/x");
    }

    #[test]
    fn upload_names_are_one_component() {
        assert_eq!(clean_file_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(clean_file_name("C:\\x\\y.txt").unwrap(), "y.txt");
        for bad in ["", "..", ".", "dir/", "a\0"] {
            assert!(clean_file_name(bad).is_err(), "{bad:?}");
        }
    }
}
