//! Consistent online backup and restore. A backup copies every table from one read transaction
//! (a consistent snapshot, taken while the writer goes on) into a new database file; a restore
//! checks a backup and installs it as a data directory's database.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable};

use crate::error::StoreError;
use crate::tables::{BUYER_BOOKINGS, CHECKPOINTS, CHECKPOINT_CHUNKS, CHECKPOINT_HEADS, LOG, META, RECORDS};

fn io(path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Io { path: path.display().to_string(), reason: error.to_string() }
}

/// Copies every table of `source` as of one snapshot into a new database at `to`.
pub fn copy_database(source: &Database, source_path: &Path, to: &Path) -> Result<(), StoreError> {
    if to.exists() {
        return Err(io(to, "already exists; choose a new path"));
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|error| io(parent, error))?;
    }
    let snapshot = source.begin_read().map_err(|error| io(source_path, error))?;
    let target = Database::create(to).map_err(|error| io(to, error))?;
    let write = target.begin_write().map_err(|error| io(to, error))?;
    let copy = || -> Result<(), redb::Error> {
        {
            let (from, mut into) = (snapshot.open_table(LOG)?, write.open_table(LOG)?);
            for item in from.iter()? {
                let (key, value) = item?;
                into.insert(key.value(), value.value())?;
            }
        }
        {
            let (from, mut into) = (snapshot.open_table(META)?, write.open_table(META)?);
            for item in from.iter()? {
                let (key, value) = item?;
                into.insert(key.value(), value.value())?;
            }
        }
        {
            let (from, mut into) = (snapshot.open_table(CHECKPOINTS)?, write.open_table(CHECKPOINTS)?);
            for item in from.iter()? {
                let (key, value) = item?;
                into.insert(key.value(), value.value())?;
            }
        }
        {
            let (from, mut into) = (snapshot.open_table(CHECKPOINT_HEADS)?, write.open_table(CHECKPOINT_HEADS)?);
            for item in from.iter()? {
                let (key, value) = item?;
                into.insert(key.value(), value.value())?;
            }
        }
        {
            let (from, mut into) = (snapshot.open_table(CHECKPOINT_CHUNKS)?, write.open_table(CHECKPOINT_CHUNKS)?);
            for item in from.iter()? {
                let (key, value) = item?;
                into.insert(key.value(), value.value())?;
            }
        }
        {
            let (from, mut into) = (snapshot.open_table(RECORDS)?, write.open_table(RECORDS)?);
            for item in from.iter()? {
                let (key, value) = item?;
                into.insert(key.value(), value.value())?;
            }
        }
        {
            let (from, mut into) = (snapshot.open_table(BUYER_BOOKINGS)?, write.open_table(BUYER_BOOKINGS)?);
            for item in from.iter()? {
                let (key, _) = item?;
                into.insert(key.value(), ())?;
            }
        }
        Ok(())
    };
    copy().map_err(|error| io(to, error))?;
    write.commit().map_err(|error| io(to, error))?;
    Ok(())
}

/// Installs the backup at `from` as the database of `data_dir`, which must not have one yet.
/// The backup is opened and its integrity checked first.
pub fn restore(from: &Path, data_dir: &Path) -> Result<(), StoreError> {
    let target = data_dir.join(crate::DATABASE_FILE);
    if target.exists() {
        return Err(io(&target, "already exists; restore into an empty data directory"));
    }
    {
        let mut backup = Database::open(from).map_err(|error| io(from, error))?;
        if !backup.check_integrity().map_err(|error| io(from, error))? {
            return Err(io(from, "failed its integrity check"));
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|error| io(data_dir, error))?;
    let partial = data_dir.join(format!("{}.restoring", crate::DATABASE_FILE));
    std::fs::copy(from, &partial).map_err(|error| io(&partial, error))?;
    std::fs::File::open(&partial).and_then(|file| file.sync_all()).map_err(|error| io(&partial, error))?;
    std::fs::rename(&partial, &target).map_err(|error| io(&target, error))?;
    Ok(())
}
