//! File handlers, at the documented `/api/files/:id` paths and the original's
//! `/api/containers/:id/files` ones. Uploads are spooled to disk as they arrive (never held
//! in memory); downloads stream out of Docker's archive.

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use tokio::io::AsyncWriteExt;

use super::http::{json, ok, read_json, HttpError, HttpResult};
use super::{query_decoded, Ctx};
use crate::api;
use crate::daemon::error::Error;
use crate::daemon::files::MAX_UPLOAD;

/// Room for the multipart framing around a file of the maximum size.
const MULTIPART_OVERHEAD: u64 = 1 << 20;

pub async fn download(ctx: &Ctx, id: &str, req: &Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_read()?;
    let path = query_decoded(req.uri(), "path");
    let d = ctx
        .state
        .files
        .download(&p.user, id, path.as_deref())
        .await?;
    let body = StreamBody::new(futures_util::StreamExt::map(d.body, |r| r.map(Frame::data)));
    let mut resp = Response::new(body.boxed_unsync());
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(CONTENT_LENGTH, d.size.into());
    h.insert("x-file-size", d.size.into());
    h.insert(
        "x-file-mode",
        HeaderValue::from_str(&format!("{:04o}", d.mode)).unwrap_or(HeaderValue::from_static("0")),
    );
    h.insert(CONTENT_DISPOSITION, disposition(&d.name));
    Ok(resp)
}

/// `attachment; filename="..."`, with an RFC 5987 `filename*` for names that are not plain
/// ASCII.
fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

pub async fn list(ctx: &Ctx, id: &str, req: &Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_read()?;
    let path = query_decoded(req.uri(), "path");
    ok(&ctx.state.files.list(&p.user, id, path.as_deref()).await?)
}

pub async fn upload(ctx: &Ctx, id: &str, req: Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    // Fail before taking in 100 MB for a container that cannot receive it.
    ctx.state.files.ensure_running(&p.user, id)?;
    let dir = query_decoded(req.uri(), "path");
    let not_multipart =
        || Error::BadRequest("expected a multipart/form-data body with a 'file' field".into());
    let boundary = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(not_multipart)?;
    let limits = multer::SizeLimit::new()
        .per_field(MAX_UPLOAD)
        .whole_stream(MAX_UPLOAD + MULTIPART_OVERHEAD);
    let mut form = multer::Multipart::with_constraints(
        req.into_body().into_data_stream(),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let multipart_err = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            HttpError::TooLarge
        }
        e => Error::BadRequest(format!("invalid multipart body: {e}")).into(),
    };
    while let Some(mut field) = form.next_field().await.map_err(multipart_err)? {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("upload").to_string();
        let (path, file) = ctx
            .state
            .files
            .spool_file()
            .map_err(|e| Error::Internal(format!("spool: {e}")))?;
        let spooled = Spooled(path);
        let mut file = tokio::fs::File::from_std(file);
        let mut size = 0u64;
        while let Some(chunk) = field.chunk().await.map_err(multipart_err)? {
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::Internal(format!("spool: {e}")))?;
        }
        file.flush()
            .await
            .map_err(|e| Error::Internal(format!("spool: {e}")))?;
        drop(file);
        let done = ctx
            .state
            .files
            .upload(&p.user, id, dir.as_deref(), &name, &spooled.0, size)
            .await?;
        return Ok(json(StatusCode::OK, &done));
    }
    Err(Error::BadRequest("multipart field 'file' is required".into()).into())
}

/// A spooled upload, removed however the request ends.
struct Spooled(std::path::PathBuf);

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub async fn mkdir(ctx: &Ctx, id: &str, req: Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    let body: api::PathRequest = read_json(req).await?;
    ok(&ctx
        .state
        .files
        .mkdir(&p.user, id, body.path.as_deref())
        .await?)
}

pub async fn delete(ctx: &Ctx, id: &str, req: &Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    let path = query_decoded(req.uri(), "path");
    ok(&ctx.state.files.delete(&p.user, id, path.as_deref()).await?)
}
