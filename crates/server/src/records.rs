//! The encrypted record store over HTTP. Every route acts for the session's account only; ids
//! come from the path and are checked to be short tokens; bodies are ciphertext the server
//! cannot read and never logs.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use sotto_api::{valid_id, Changes, Deleted, PutRecord, PutResult, RecordOut};
use sotto_store::RecordWrite;

use crate::accounts::{Accounts, Authed};
use crate::error::Failure;
use crate::extract::{Body, Query};

const MAX_PAGE: u32 = 1000;
/// Most ciphertext one page of changes carries (base64 makes the answer a third larger): well
/// under what clients read (64 MiB), while the largest record (8 MiB) always fits on a page of
/// its own.
const MAX_PAGE_BYTES: u64 = 16 * 1024 * 1024;

fn check_id(id: &str) -> Result<(), Failure> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(Failure::BadRequest(
            "record ids, groups and kinds are 1-128 characters of A-Z a-z 0-9 . _ -",
        ))
    }
}

pub(crate) async fn put(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Path(id): Path<String>,
    Body(req): Body<PutRecord>,
) -> Result<Json<PutResult>, Failure> {
    check_id(&id)?;
    check_id(&req.kind)?;
    if let Some(g) = &req.group {
        check_id(g)?;
    }
    let result = a
        .store
        .put_record(
            auth.account,
            RecordWrite {
                id: &id,
                group: req.group.as_deref(),
                kind: &req.kind,
                expected_version: req.expected_version,
                ciphertext: &req.ciphertext,
            },
            a.config.quota,
        )
        .await?;
    Ok(Json(result))
}

pub(crate) async fn get(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Path(id): Path<String>,
) -> Result<Json<RecordOut>, Failure> {
    check_id(&id)?;
    a.store
        .get_record(auth.account, &id)
        .await?
        .map(Json)
        .ok_or(Failure::NotFound("record"))
}

#[derive(Deserialize)]
pub(crate) struct DeleteQuery {
    expected_version: Option<u64>,
}

pub(crate) async fn delete(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Deleted>, Failure> {
    check_id(&id)?;
    if a.store
        .delete_record(auth.account, &id, q.expected_version)
        .await?
    {
        Ok(Json(Deleted { deleted: 1 }))
    } else {
        Err(Failure::NotFound("record"))
    }
}

pub(crate) async fn delete_group(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Path(group): Path<String>,
) -> Result<Json<Deleted>, Failure> {
    check_id(&group)?;
    let deleted = a.store.delete_group(auth.account, &group).await?;
    Ok(Json(Deleted { deleted }))
}

#[derive(Deserialize)]
pub(crate) struct ChangesQuery {
    #[serde(default)]
    since: u64,
    limit: Option<u32>,
}

pub(crate) async fn changes(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Query(q): Query<ChangesQuery>,
) -> Result<Json<Changes>, Failure> {
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let page = a
        .store
        .changes(auth.account, q.since, limit, MAX_PAGE_BYTES)
        .await?;
    Ok(Json(page))
}
