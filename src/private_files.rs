//! Files of the service are private to its user: phone numbers, message
//! bodies, auth tokens and the link-signing key live in them. New files and
//! directories get no group or other permissions (the process umask), and
//! existing ones are tightened at start.

use std::path::Path;

/// Sets the process umask to 077: directories are created 0700, files 0600.
pub fn restrict_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Removes group and other permissions from `dir` and everything under it
/// (symbolic links are not followed). Returns how many entries changed.
pub fn tighten(dir: &Path) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            return Ok(0);
        }
        let mut changed = 0;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
            changed += 1;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(dir)? {
                changed += tighten(&entry?.path())?;
            }
        }
        Ok(changed)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(0)
    }
}

/// Tightens each of `dirs` that exists, and says so in the log.
pub fn tighten_all(dirs: &[&Path]) -> anyhow::Result<()> {
    for dir in dirs {
        let changed = tighten(dir).map_err(|e| {
            anyhow::anyhow!(
                "could not restrict the permissions of {}: {e}",
                dir.display()
            )
        })?;
        if changed > 0 {
            tracing::info!(
                path = %dir.display(),
                changed,
                "removed group and other permissions: the service's files are its owner's alone"
            );
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn existing_files_and_directories_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("files");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("day.json.gz"), b"x").unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            sub.join("day.json.gz"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(tighten(dir.path()).unwrap(), 3);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(mode(&sub.join("day.json.gz")), 0o600);
        assert_eq!(tighten(dir.path()).unwrap(), 0);
    }
}
