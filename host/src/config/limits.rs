//! `[limits]`: resource limits per node run, in the policy (defaults, and overrides per workflow
//! node under `[limits.nodes.<node>]`) and in a custom node's manifest (that node's own).
//!
//! ```toml
//! [limits]
//! memory = "64 MiB"     # linear memory; a byte count or a size such as "64 MiB" or "1 GB"
//! cpu_time_ms = 5000    # time running wasm (waiting on egress does not count)
//! wall_time_ms = 60000  # the whole node run
//! output = "4 MiB"      # the node's JSON output
//! logs = "1 MiB"        # total log message bytes
//! requests = 100        # egress requests per node run
//! [limits.nodes.fetch]  # the workflow node "fetch" only (policy only)
//! cpu_time_ms = 20000
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::sandbox::{LimitOverrides, PolicyLimits};

/// A wasm32 linear memory cannot exceed 4 GiB.
const MAX_MEMORY: u64 = 4 << 30;

/// A size in bytes: a whole number, or text `bytesize` reads ("64 MiB", "1.5 GB", "4KiB").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size(u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Size, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as 1048576 or \"1 MiB\"")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Size, E> {
                u64::try_from(n)
                    .map(Size)
                    .map_err(|_| E::custom(format!("{n} is negative")))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Size, E> {
                Ok(Size(n))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Size, E> {
                text.trim()
                    .parse::<ByteSize>()
                    .map(|size| Size(size.as_u64()))
                    .map_err(|reason| {
                        E::custom(format!(
                            "{text:?} is not a size such as \"64 MiB\": {reason}"
                        ))
                    })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A `[limits]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsSection {
    memory: Option<Spanned<Size>>,
    cpu_time_ms: Option<Spanned<u64>>,
    wall_time_ms: Option<Spanned<u64>>,
    output: Option<Spanned<Size>>,
    logs: Option<Spanned<Size>>,
    /// 0 allowed: a node with `requests = 0` may send nothing.
    requests: Option<u32>,
    /// Per workflow node; only in the policy's `[limits]`.
    nodes: Option<Spanned<BTreeMap<String, LimitsSection>>>,
}

impl LimitsSection {
    /// The policy's `[limits]`: defaults over the built-in ones, and per-node overrides.
    pub(super) fn policy_limits(&self, source: &Source<'_>) -> Result<PolicyLimits, ConfigError> {
        let defaults = self.overrides(source)?;
        let mut nodes = HashMap::new();
        for (node, section) in self.nodes.iter().flat_map(|n| n.get_ref()) {
            if let Some(nested) = &section.nodes {
                return Err(source.error_at(
                    nested.span(),
                    "per-node limits cannot have their own `nodes`".into(),
                ));
            }
            nodes.insert(node.clone(), section.overrides(source)?);
        }
        Ok(PolicyLimits::new(defaults, nodes))
    }

    /// A manifest's `[limits]`: the node's own values; `nodes` is refused here.
    pub(super) fn node_overrides(
        &self,
        source: &Source<'_>,
    ) -> Result<LimitOverrides, ConfigError> {
        if let Some(nodes) = &self.nodes {
            return Err(source.error_at(
                nodes.span(),
                "per-node limits belong in the policy's [limits.nodes.<node>]".into(),
            ));
        }
        self.overrides(source)
    }

    /// Checks each value and turns it into the unit the sandbox uses.
    fn overrides(&self, source: &Source<'_>) -> Result<LimitOverrides, ConfigError> {
        let size = |value: &Option<Spanned<Size>>, max: u64| {
            value
                .as_ref()
                .map(|size| checked_size(size, max, source))
                .transpose()
        };
        let millis = |value: &Option<Spanned<u64>>| {
            value
                .as_ref()
                .map(|ms| checked_millis(ms, source))
                .transpose()
        };
        Ok(LimitOverrides {
            memory_bytes: size(&self.memory, MAX_MEMORY)?,
            cpu_time: millis(&self.cpu_time_ms)?,
            wall_time: millis(&self.wall_time_ms)?,
            max_output_bytes: size(&self.output, u64::MAX)?,
            max_log_bytes: size(&self.logs, u64::MAX)?,
            max_requests: self.requests,
        })
    }
}

fn checked_size(size: &Spanned<Size>, max: u64, source: &Source<'_>) -> Result<usize, ConfigError> {
    let bytes = size.get_ref().0;
    let refuse = |reason: String| Err(source.error_at(size.span(), reason));
    if bytes == 0 {
        return refuse("must be greater than 0".into());
    }
    if bytes > max {
        return refuse(format!("{bytes} bytes is more than the maximum of {max}"));
    }
    usize::try_from(bytes)
        .or_else(|_| refuse(format!("{bytes} bytes is too large for this machine")))
}

fn checked_millis(ms: &Spanned<u64>, source: &Source<'_>) -> Result<Duration, ConfigError> {
    match *ms.get_ref() {
        0 => Err(source.error_at(
            ms.span(),
            "must be a positive number of milliseconds".into(),
        )),
        n => Ok(Duration::from_millis(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::NodeLimits;

    fn policy_limits(text: &str) -> Result<PolicyLimits, ConfigError> {
        #[derive(Deserialize)]
        struct File {
            limits: LimitsSection,
        }
        let source = Source {
            file: "p.toml",
            text,
        };
        source.parse::<File>()?.limits.policy_limits(&source)
    }

    #[test]
    fn reads_every_key_and_size_form() {
        let limits = policy_limits(
            "[limits]\nmemory = \"32 MiB\"\ncpu_time_ms = 250\nwall_time_ms = 1000\n\
             output = 2048\nlogs = \"4KiB\"\nrequests = 0",
        )
        .unwrap();
        assert_eq!(
            limits.defaults(),
            &NodeLimits {
                memory_bytes: 32 << 20,
                cpu_time: Duration::from_millis(250),
                wall_time: Duration::from_secs(1),
                max_output_bytes: 2048,
                max_log_bytes: 4096,
                max_requests: 0,
            }
        );
    }

    #[test]
    fn bad_values_name_the_line_key_and_reason() {
        let cases = [
            ("[limits]\nmemory = \"64 XB\"", 2, "limits.memory", ""),
            (
                "[limits]\nmemory = \"5 GiB\"",
                2,
                "limits.memory",
                "maximum",
            ),
            ("[limits]\nmemory = 0", 2, "limits.memory", "greater than 0"),
            ("[limits]\noutput = -1", 2, "limits.output", ""),
            (
                "[limits]\ncpu_time_ms = 0",
                2,
                "limits.cpu_time_ms",
                "positive",
            ),
            (
                "[limits]\nwall_time_ms = \"1s\"",
                2,
                "limits.wall_time_ms",
                "",
            ),
            ("[limits]\nrequests = -3", 2, "limits.requests", "-3"),
            ("[limits]\nrequests = 1.5", 2, "limits.requests", ""),
            ("[limits]\ncpu = 5", 2, "limits.cpu", "unknown field `cpu`"),
            ("[limits]\nnodes = 3", 2, "limits.nodes", ""),
            ("[limits.nodes]\nfetch = 3", 2, "limits.nodes.fetch", ""),
            (
                "[limits.nodes.fetch]\nmemroy = 1",
                2,
                "limits.nodes.fetch.memroy",
                "unknown field",
            ),
            (
                "[limits]\n\n[limits.nodes.fetch]\nlogs = true",
                4,
                "limits.nodes.fetch.logs",
                "",
            ),
            (
                "[limits.nodes.a.nodes.b]\nlogs = 1",
                1,
                "limits.nodes.a.nodes",
                "their own `nodes`",
            ),
        ];
        for (text, line, key, reason) in cases {
            let err = policy_limits(text).unwrap_err();
            assert_eq!(err.line, Some(line), "{text}: {err}");
            assert_eq!(err.key.as_deref(), Some(key), "{text}: {err}");
            assert!(err.reason.contains(reason), "{text}: {err}");
            assert!(err.to_string().starts_with("p.toml, line "), "{err}");
        }
    }

    #[test]
    fn per_node_overrides_apply_on_top_of_a_base() {
        let limits = policy_limits(
            "[limits]\nmemory = \"16 MiB\"\n[limits.nodes.fetch]\ncpu_time_ms = 9000\nrequests = 500",
        )
        .unwrap();
        let fetch = limits.for_node("fetch", limits.defaults());
        assert_eq!(fetch.memory_bytes, 16 << 20);
        assert_eq!(fetch.cpu_time, Duration::from_secs(9));
        assert_eq!(fetch.max_requests, 500);
        assert_eq!(
            limits.for_node("other", limits.defaults()),
            *limits.defaults()
        );
        assert_eq!(limits.max_requests(), 500);
    }
}
