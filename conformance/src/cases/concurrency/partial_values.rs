//! Readers racing a writer of whole values, through `get` and `get_stream`, never see part
//! of one.

use bytes::Bytes;

use super::clients::{instances, settle_keys};
use crate::causes;
use crate::ctx::{Ctx, Failure};
use crate::race::race;

/// The values [`partial`] alternates between: multi-page when the backend takes it, each a
/// different length and pattern, so that a torn read matches neither.
fn whole_values(ctx: &Ctx) -> [Bytes; 2] {
    let len = if ctx.caps().max_value_bytes >= crate::shapes::MULTI_PAGE_BYTES as u64 {
        crate::shapes::MULTI_PAGE_BYTES
    } else {
        (ctx.caps().max_value_bytes as usize).clamp(2, 4096)
    };
    [
        Bytes::from(vec![0xa5u8; len]),
        Bytes::from((0..len - 1).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
    ]
}

/// One instance overwrites a key again and again with two whole values while two others
/// read it through `get` and `get_stream`: every read is one whole value or the other,
/// never part of one, and the last read of all is the last value written.
pub(super) async fn readers_never_see_a_partial_value_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    let insts = instances(&ctx, 3, true).await?;
    let values = whole_values(&ctx);
    let mut keys = Vec::new();
    for round in 0..2usize {
        let key = format!("whole{round}");
        insts[0].put(&key, values[1].clone()).await?;
        let writes = 6usize;
        let racers: Vec<_> = insts
            .iter()
            .enumerate()
            .map(|(i, inst)| {
                let inst = inst.clone();
                let key = key.clone();
                let values = values.clone();
                async move {
                    if i == 0 {
                        for w in 0..writes {
                            inst.put(&key, values[w % 2].clone()).await?;
                            tokio::task::yield_now().await;
                        }
                        return Ok::<_, Failure>(());
                    }
                    for r in 0..writes * 2 {
                        let read = if (r + i) % 2 == 0 {
                            inst.get(&key).await?.map(|b| b.value)
                        } else {
                            inst.get_stream(&key).await?.map(|(_, v)| Bytes::from(v))
                        };
                        match read {
                            Some(v) if values.contains(&v) => {}
                            Some(v) => {
                                return Err(Failure::new(format!(
                                    "instance {} read {key:?} as {} bytes while instance 0 wrote it \
                                     with whole values of {} and {} bytes: a partial value",
                                    inst.id,
                                    v.len(),
                                    values[0].len(),
                                    values[1].len()
                                ))
                                .because(causes::PARTIAL_VALUES));
                            }
                            None => {
                                return Err(Failure::new(format!(
                                    "instance {} read {key:?} as not found while instance 0 \
                                     overwrote it",
                                    inst.id
                                ))
                                .because(causes::NOT_VISIBLE_ACROSS_INSTANCES));
                            }
                        }
                        tokio::task::yield_now().await;
                    }
                    Ok(())
                }
            })
            .collect();
        for r in race(ctx.probe(), round, racers).await? {
            r?;
        }
        let last = insts[1].get(&key).await?.map(|b| b.value);
        let want = &values[(writes - 1) % 2];
        ensure_last(last.as_ref(), want, &key)?;
        keys.push(key);
    }
    settle_keys(&ctx, &insts[0], &keys, true).await
}

fn ensure_last(last: Option<&Bytes>, want: &Bytes, key: &str) -> Result<(), Failure> {
    match last {
        Some(v) if v == want => Ok(()),
        Some(v) => Err(Failure::new(format!(
            "once the writes ended, instance 1 reads {key:?} as {} bytes, not the {} of the last write",
            v.len(),
            want.len()
        ))
        .because(causes::NOT_VISIBLE_ACROSS_INSTANCES)),
        None => Err(Failure::new(format!(
            "once the writes ended, instance 1 reads {key:?} as not found"
        ))
        .because(causes::NOT_VISIBLE_ACROSS_INSTANCES)),
    }
}
