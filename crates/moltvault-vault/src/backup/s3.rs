//! S3-compatible object storage as a backup target (feature `s3`), through `object_store`.
//!
//! Backups are write-once objects `<prefix>/<name>`. Uploads are streamed as a multipart upload
//! (8 MiB parts, at most two in flight), so no temp copy of the backup is made and memory stays
//! bounded; the object appears only when the upload completes, and an upload dropped before
//! [`BackupUpload::commit`] is aborted.

use std::io::{self, Read, Write};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use secrecy::{ExposeSecret, SecretString};

use super::{BACKUP_SUFFIX, BackupError, BackupTarget, BackupUpload};

/// Size of each multipart part.
const PART_SIZE: usize = 8 << 20;
/// Parts uploaded concurrently.
const PARTS_IN_FLIGHT: usize = 2;

/// Connection settings for an S3-compatible store (the CLI fills them from `AWS_*` variables).
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// The endpoint URL (`http://127.0.0.1:9000`); AWS when `None`.
    pub endpoint: Option<String>,
    /// The region; `us-east-1` when `None`.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<SecretString>,
    /// A session token, for temporary credentials.
    pub session_token: Option<SecretString>,
}

/// Backups under `s3://bucket/prefix`.
pub struct S3Target {
    url: String,
    prefix: String,
    store: Arc<AmazonS3>,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Whether an `http://` endpoint points at this machine (plain HTTP is allowed only there).
fn is_loopback_http(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl S3Target {
    /// Connects to `s3://bucket/prefix` (no request is made yet).
    ///
    /// # Errors
    /// Fails if the URL is malformed, the endpoint is plain HTTP to another machine, or the
    /// client cannot be built.
    pub fn open(url: &str, cfg: S3Config) -> Result<S3Target, BackupError> {
        let remote = |source: Box<dyn std::error::Error + Send + Sync>| BackupError::Remote {
            op: "open",
            name: url.to_string(),
            source,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| remote("the URL does not start with s3://".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(remote("no bucket in the URL".into()));
        }
        let prefix = prefix.trim_matches('/').to_string();
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(cfg.region.as_deref().unwrap_or("us-east-1"));
        if let Some(e) = &cfg.endpoint {
            if e.starts_with("http://") && !is_loopback_http(e) {
                return Err(remote(
                    format!("plain-HTTP endpoint {e} is not on this machine; use https").into(),
                ));
            }
            b = b
                .with_endpoint(e)
                .with_allow_http(is_loopback_http(e))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(k) = &cfg.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &cfg.secret_access_key {
            b = b.with_secret_access_key(s.expose_secret());
        }
        if let Some(t) = &cfg.session_token {
            b = b.with_token(t.expose_secret());
        }
        let store = b.build().map_err(|e| remote(Box::new(e)))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| remote(Box::new(e)))?;
        Ok(S3Target {
            url: format!(
                "s3://{bucket}{}{prefix}",
                if prefix.is_empty() { "" } else { "/" }
            ),
            prefix,
            store: Arc::new(store),
            rt,
        })
    }

    fn path(&self, name: &str) -> Result<ObjPath, BackupError> {
        if name.contains('/') || !name.ends_with(BACKUP_SUFFIX) || name.starts_with('.') {
            return Err(BackupError::BadName(name.to_string()));
        }
        Ok(if self.prefix.is_empty() {
            ObjPath::from(name)
        } else {
            ObjPath::from(format!("{}/{name}", self.prefix))
        })
    }

    fn err(&self, op: &'static str, name: &str, e: object_store::Error) -> BackupError {
        if let object_store::Error::NotFound { .. } = e {
            return BackupError::NotFound(name.to_string());
        }
        BackupError::Remote {
            op,
            name: format!("{}/{name}", self.url),
            source: Box::new(e),
        }
    }
}

impl BackupTarget for S3Target {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn list_names(&self) -> Result<Vec<(String, u64)>, BackupError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjPath::from(self.prefix.as_str()));
        let metas: Vec<object_store::ObjectMeta> = self
            .rt
            .block_on(self.store.list(prefix.as_ref()).try_collect())
            .map_err(|e| self.err("list", "", e))?;
        let depth = if self.prefix.is_empty() {
            1
        } else {
            self.prefix.split('/').count() + 1
        };
        Ok(metas
            .into_iter()
            .filter(|m| m.location.parts().count() == depth)
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                (name.ends_with(BACKUP_SUFFIX) && !name.starts_with('.')).then_some((name, m.size))
            })
            .collect())
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + '_>, BackupError> {
        let p = self.path(name)?;
        let got = self
            .rt
            .block_on(self.store.get(&p))
            .map_err(|e| self.err("read", name, e))?;
        Ok(Box::new(io::BufReader::with_capacity(
            1 << 20,
            S3Reader {
                target: self,
                name: name.to_string(),
                stream: got.into_stream(),
                chunk: None,
                pos: 0,
            },
        )))
    }

    fn create(&self, name: &str) -> Result<Box<dyn BackupUpload + '_>, BackupError> {
        let p = self.path(name)?;
        match self.rt.block_on(self.store.head(&p)) {
            Ok(_) => return Err(BackupError::Exists(name.to_string())),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.err("inspect", name, e)),
        }
        let up = self
            .rt
            .block_on(self.store.put_multipart(&p))
            .map_err(|e| self.err("start the upload of", name, e))?;
        Ok(Box::new(S3Upload {
            target: self,
            name: name.to_string(),
            w: Some(WriteMultipart::new_with_chunk_size(up, PART_SIZE)),
        }))
    }

    fn delete(&self, name: &str) -> Result<(), BackupError> {
        let p = self.path(name)?;
        self.rt
            .block_on(self.store.delete(&p))
            .map_err(|e| self.err("delete", name, e))
    }
}

struct S3Reader<'a, S, B> {
    target: &'a S3Target,
    name: String,
    stream: S,
    chunk: Option<B>,
    pos: usize,
}

impl<S, B> Read for S3Reader<'_, S, B>
where
    S: futures::Stream<Item = object_store::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(c) = &self.chunk {
                let c = c.as_ref();
                if self.pos < c.len() {
                    let n = buf.len().min(c.len() - self.pos);
                    buf[..n].copy_from_slice(&c[self.pos..self.pos + n]);
                    self.pos += n;
                    return Ok(n);
                }
            }
            match self.target.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(c)) => {
                    self.chunk = Some(c);
                    self.pos = 0;
                }
                Some(Err(e)) => {
                    return Err(io::Error::other(self.target.err("read", &self.name, e)));
                }
            }
        }
    }
}

struct S3Upload<'a> {
    target: &'a S3Target,
    name: String,
    w: Option<WriteMultipart>,
}

impl Write for S3Upload<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let w = self.w.as_mut().expect("upload present until commit");
        let _g = self.target.rt.enter();
        // Back-pressure: never more than PARTS_IN_FLIGHT parts buffered or uploading.
        self.target
            .rt
            .block_on(w.wait_for_capacity(PARTS_IN_FLIGHT))
            .map_err(|e| io::Error::other(self.target.err("upload", &self.name, e)))?;
        w.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BackupUpload for S3Upload<'_> {
    fn commit(mut self: Box<Self>) -> Result<(), BackupError> {
        let w = self.w.take().expect("upload present until commit");
        let _g = self.target.rt.enter();
        self.target
            .rt
            .block_on(w.finish())
            .map(|_| ())
            .map_err(|e| self.target.err("complete the upload of", &self.name, e))
    }
}

impl Drop for S3Upload<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.w.take() {
            let _g = self.target.rt.enter();
            let _ = self.target.rt.block_on(w.abort());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(is_loopback_http("http://127.0.0.1:9000"));
        assert!(is_loopback_http("http://localhost:9000/"));
        assert!(is_loopback_http("http://[::1]:9000"));
        assert!(!is_loopback_http("http://example.com:9000"));
        assert!(!is_loopback_http("https://127.0.0.1"));
        let err = S3Target::open(
            "s3://b/p",
            S3Config {
                endpoint: Some("http://10.0.0.1:9000".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("remote store"));
    }

    #[test]
    fn secrets_in_the_config_are_redacted_in_debug() {
        let c = S3Config {
            secret_access_key: Some(SecretString::from("wJalrXUtnFEMI-not-a-real-key")),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("wJalr"));
    }
}
