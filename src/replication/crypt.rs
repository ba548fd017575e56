//! The archive's bytes on their way out and back: age encryption to the recipients (to
//! a temporary file, fsynced), decryption with an identity file, and SHA-256 of what
//! travels.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::RemoteError;

/// SHA-256 over bytes as they pass.
#[derive(Default)]
pub(super) struct Hasher(Sha256);

impl Hasher {
    pub(super) fn update(&mut self, b: &[u8]) {
        self.0.update(b);
    }
    pub(super) fn hex(&self) -> String {
        hex::encode(self.0.clone().finalize())
    }
}

/// A writer that hashes and counts what it writes.
struct Hashing<W> {
    inner: W,
    hash: Hasher,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RemoteError + '_ {
    move |e| RemoteError::Invalid(format!("{}: {e}", path.display()))
}

/// Size and SHA-256 of a file.
pub(super) fn digest(path: &Path) -> Result<(u64, String), RemoteError> {
    let mut f = BufReader::new(File::open(path).map_err(io(path))?);
    let mut h = Hashing {
        inner: std::io::sink(),
        hash: Hasher::default(),
        n: 0,
    };
    std::io::copy(&mut f, &mut h).map_err(io(path))?;
    Ok((h.n, h.hash.hex()))
}

/// Encrypt `src` to `recipients` into `dst` (written and fsynced); size and SHA-256 of
/// the encrypted file.
pub(super) fn encrypt(
    src: &Path,
    dst: &Path,
    recipients: &[age::x25519::Recipient],
) -> Result<(u64, String), RemoteError> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| RemoteError::Invalid(format!("cannot encrypt: {e}")))?;
    let file = File::create(dst).map_err(io(dst))?;
    let mut hashing = Hashing {
        inner: BufWriter::new(file),
        hash: Hasher::default(),
        n: 0,
    };
    {
        let mut w = encryptor.wrap_output(&mut hashing).map_err(io(dst))?;
        let mut r = BufReader::new(File::open(src).map_err(io(src))?);
        std::io::copy(&mut r, &mut w).map_err(io(dst))?;
        w.finish().map_err(io(dst))?;
    }
    hashing.flush().map_err(io(dst))?;
    let Hashing { inner, hash, n } = hashing;
    let file = inner
        .into_inner()
        .map_err(|e| RemoteError::Invalid(format!("{}: {}", dst.display(), e.error())))?;
    file.sync_all().map_err(io(dst))?;
    Ok((n, hash.hex()))
}

/// Decrypt `src` into `dst` with the identities in `identity_file`.
pub(super) fn decrypt(src: &Path, dst: &Path, identity_file: &Path) -> Result<(), RemoteError> {
    let bad_identity = |why: String| {
        RemoteError::Invalid(format!(
            "{} is not a usable age identity file: {why}",
            identity_file.display()
        ))
    };
    let identities = age::IdentityFile::from_file(identity_file.display().to_string())
        .map_err(|e| bad_identity(e.to_string()))?
        .into_identities()
        .map_err(|e| bad_identity(e.to_string()))?;
    let decryptor = age::Decryptor::new(BufReader::new(File::open(src).map_err(io(src))?))
        .map_err(|e| RemoteError::Invalid(format!("{}: not an age file: {e}", src.display())))?;
    let mut r = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| {
            RemoteError::Invalid(format!(
                "cannot decrypt with {}: {e} (is it the identity of one of backup.remote.recipients?)",
                identity_file.display()
            ))
        })?;
    let mut out = BufWriter::new(File::create(dst).map_err(io(dst))?);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| RemoteError::Invalid(format!("the encrypted archive is damaged: {e}")))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(io(dst))?;
    }
    let file = out
        .into_inner()
        .map_err(|e| RemoteError::Invalid(format!("{}: {}", dst.display(), e.error())))?;
    file.sync_all().map_err(io(dst))?;
    Ok(())
}
