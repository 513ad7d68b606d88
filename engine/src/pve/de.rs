//! Lenient readers for Proxmox answers: Perl hands out numbers and
//! booleans sometimes as JSON numbers, sometimes as strings (`"1500"`,
//! `"1"`), depending on where a value came from.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

fn num(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(u64::from(*b)),
        _ => None,
    }
}

/// `Option<u64>` from a number or numeric string.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => num(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a number, got {v}"))),
    }
}

/// `Option<u32>` from a number or numeric string.
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    opt_u64(d)?
        .map(|n| {
            u32::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is out of range")))
        })
        .transpose()
}

/// `u64` from a number or numeric string.
pub fn u64_any<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    opt_u64(d)?.ok_or_else(|| serde::de::Error::custom("missing number"))
}

/// `u32` from a number or numeric string.
pub fn u32_any<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    opt_u32(d)?.ok_or_else(|| serde::de::Error::custom("missing number"))
}

/// `Option<bool>` from `true`/`false`, `0`/`1` or `"0"`/`"1"`.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(v) => Some(
            num(&v)
                .ok_or_else(|| serde::de::Error::custom(format!("expected a boolean, got {v}")))?
                != 0,
        ),
    })
}

/// `Option<String>` from a string or a number.
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// `Option<u32>` thousandths from a fraction given as a number or numeric
/// string (Proxmox's `cpu`: `0.25` → 250); negative or unreadable → error.
pub fn opt_permille<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let fraction = match &v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match fraction {
        Some(f) if f.is_finite() && f >= 0.0 => {
            Ok(Some((f * 1000.0).round().min(f64::from(u32::MAX)) as u32))
        }
        _ => Err(serde::de::Error::custom(format!(
            "expected a fraction, got {}",
            v.unwrap_or(Value::Null)
        ))),
    }
}
