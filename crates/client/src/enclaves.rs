//! Which enclave of a server's pool to talk to. The client picks one itself, at random among
//! those the server lists as up and not draining, and asks the relay for it by id: a server
//! that cannot tell who a relay connection belongs to (relay tokens, a hop) then cannot steer
//! one user to one machine either, since the user's client, not the server, made the choice.
//! A pick is a preference (the relay falls back to another enclave if it cannot reach it); a
//! user who names an enclave insists on it.
//!
//! Trust: the list comes from the untrusted server; an id is used only as a query parameter
//! and is refused unless it is short and alphanumeric. Whichever enclave answers, its evidence
//! is verified as any other's. Randomness is passed in (this crate keeps no generator).

use sotto_api::{routes, Enclaves};

use crate::http::{ClientError, Method, Request, Response};

/// The request for the pool's list.
pub fn request() -> Request {
    Request::new(Method::Get, routes::ENCLAVES)
}

/// The server's list; a server without a pool list (404) has none to pick from.
pub fn read(resp: &Response) -> Result<Enclaves, ClientError> {
    if resp.is_not_found() {
        return Ok(Enclaves {
            enclaves: Vec::new(),
        });
    }
    if !resp.ok() {
        return Err(resp.error());
    }
    let list: Enclaves = resp.json()?;
    if list.enclaves.iter().any(|e| !valid_id(&e.id)) {
        return Err(ClientError::Protocol(
            "the server listed an enclave id that is not 1 to 64 letters and digits",
        ));
    }
    Ok(list)
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The id to ask for, picked by `random` among the enclaves up and not draining; `None` when
/// there is none to choose between (the relay then picks).
pub fn pick(list: &Enclaves, random: u64) -> Option<&str> {
    let open: Vec<&str> = list
        .enclaves
        .iter()
        .filter(|e| e.up && !e.draining)
        .map(|e| e.id.as_str())
        .collect();
    let n = u64::try_from(open.len()).ok().filter(|&n| n > 0)?;
    open.get(usize::try_from(random % n).ok()?).copied()
}

/// The relay URL `relay` asking for the enclave `id`: that one or none when `insist`, else that
/// one first. Refuses an id the relay could not have listed (one typed by the user, say).
pub fn relay_for(relay: &str, id: &str, insist: bool) -> Result<String, ClientError> {
    if !valid_id(id) {
        return Err(ClientError::Protocol(
            "an enclave id is 1 to 64 letters and digits (see the server's /v1/enclaves)",
        ));
    }
    let sep = if relay.contains('?') { '&' } else { '?' };
    let param = if insist {
        routes::ENCLAVE_PARAM
    } else {
        routes::PREFER_PARAM
    };
    Ok(format!("{relay}{sep}{param}={id}"))
}

#[cfg(test)]
mod tests {
    use sotto_api::EnclaveInfo;

    use super::*;

    fn list(states: &[(&str, bool, bool)]) -> Enclaves {
        Enclaves {
            enclaves: states
                .iter()
                .map(|&(id, up, draining)| EnclaveInfo {
                    id: id.into(),
                    up,
                    draining,
                })
                .collect(),
        }
    }

    #[test]
    fn picks_only_among_the_open_and_each_of_them() {
        let l = list(&[
            ("a1", true, false),
            ("b2", false, false),
            ("c3", true, true),
            ("d4", true, false),
        ]);
        let picked: std::collections::BTreeSet<_> = (0..8).filter_map(|r| pick(&l, r)).collect();
        assert_eq!(picked.into_iter().collect::<Vec<_>>(), ["a1", "d4"]);
        assert_eq!(pick(&list(&[("a1", false, false)]), 7), None);
        assert_eq!(pick(&list(&[]), 7), None);
    }

    #[test]
    fn lists_with_unusable_ids_are_refused() {
        for id in ["", "a&b=1", "x/../y", &"a".repeat(65)] {
            let body = serde_json::to_vec(&list(&[(id, true, false)])).unwrap();
            assert!(read(&Response::new(200, body)).is_err(), "{id:?}");
        }
        let body = serde_json::to_vec(&list(&[("0a1b2c3d4e5f", true, false)])).unwrap();
        assert_eq!(read(&Response::new(200, body)).unwrap().enclaves.len(), 1);
        assert!(read(&Response::new(404, vec![]))
            .unwrap()
            .enclaves
            .is_empty());
    }

    #[test]
    fn the_relay_url_names_the_enclave() {
        assert_eq!(
            relay_for("ws://h/v1/relay", "0a1b", true).unwrap(),
            "ws://h/v1/relay?enclave=0a1b"
        );
        assert_eq!(
            relay_for("ws://h/v1/relay?x=1", "0a1b", false).unwrap(),
            "ws://h/v1/relay?x=1&prefer=0a1b"
        );
        assert!(relay_for("ws://h/v1/relay", "a b", true).is_err());
    }
}
