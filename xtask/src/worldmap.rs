//! `cargo xtask world-map`: regenerates crates/crmonban-report/src/world.txt, the country shapes of
//! the HTML report's map (`crmonctl report --html`), from Natural Earth's countries as the npm
//! package `world-atlas` ships them (TopoJSON, keyed by ISO 3166-1 numeric code), with the ISO
//! alpha-2 codes and names of Debian's `iso-codes`. It owns the conversion only: TopoJSON arcs
//! decoded, Antarctica left out, projected (Natural Earth projection), rounded to whole units of a
//! [`WIDTH`]-wide view box and written as relative SVG path data; countries too small for the
//! 1:110m file get a dot where the 1:50m file puts them. Run it again only to change the map; the
//! output is deterministic for a given package version.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{install_missing, status};

mod geometry;

use geometry::{
    bounds, decode_arc, dot, largest_ring_centre, path_data, project, split_at_antimeridian, stitch,
};

/// The npm package and version the map is made from (pinned: the output depends on it).
const PACKAGE: &str = "world-atlas@2.0.2";
/// Where Debian's iso-codes keeps the ISO 3166-1 table.
const ISO_3166: &str = "/usr/share/iso-codes/json/iso_3166-1.json";
/// npm to fetch the package, iso-codes for the codes.
const PACKAGES: &[(&str, &str)] = &[("npm", "/usr/bin/npm"), ("iso-codes", ISO_3166)];
/// The generated file, relative to the workspace root.
pub(crate) const OUTPUT: &str = "crates/crmonban-report/src/world.txt";
/// The view box's width in path units; its height follows from the projection.
const WIDTH: f64 = 2000.0;
/// ISO numeric code of Antarctica: nobody attacks from there, and it would take a fifth of the
/// map's height.
const ANTARCTICA: &str = "010";
/// Shapes Natural Earth has no ISO numeric code for: Kosovo takes `XK`, the code GeoIP
/// databases report for it; the others are drawn as land that is never shaded (GeoIP reports
/// their addresses under the country the ISO standard places them in).
const UNCODED: &[(&str, &str)] = &[("Kosovo", "XK"), ("N. Cyprus", "-"), ("Somaliland", "-")];

/// `cargo xtask world-map [-- --from DIR]`: DIR holds an unpacked world-atlas package (else it
/// is fetched with `npm pack` into a temporary directory).
pub(crate) fn run(root: &Path, args: &[String]) -> Result<ExitCode> {
    install_missing(PACKAGES)?;
    let (from, fetched) = match args {
        [flag, dir] if flag == "--from" => (PathBuf::from(dir), None),
        [] => {
            let dir = fetch_package()?;
            (dir.join("package"), Some(dir))
        }
        _ => bail!("usage: cargo xtask world-map [-- --from DIR]"),
    };
    let generated = generate_from(root, &from);
    if let Some(dir) = fetched {
        let _ = std::fs::remove_dir_all(dir);
    }
    generated
}

/// Writes [`OUTPUT`] from the unpacked package at `from`.
fn generate_from(root: &Path, from: &Path) -> Result<ExitCode> {
    let read = |name: &str| -> Result<Value> {
        let path = from.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    };
    let version = read("package.json")?["version"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let iso: Value = serde_json::from_str(
        &std::fs::read_to_string(ISO_3166).with_context(|| format!("reading {ISO_3166}"))?,
    )
    .with_context(|| format!("parsing {ISO_3166}"))?;
    let text = generate(
        &read("countries-110m.json")?,
        &read("countries-50m.json")?,
        &iso,
        &version,
    )?;
    let out = root.join(OUTPUT);
    std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "xtask: wrote {} ({} bytes, {} countries)",
        out.display(),
        text.len(),
        text.lines().filter(|l| l.contains('\t')).count()
    );
    Ok(ExitCode::SUCCESS)
}

/// `npm pack`s [`PACKAGE`] into a fresh temporary directory and unpacks it there (in
/// `package/`); returns the temporary directory.
fn fetch_package() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("crmonban-world-map-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    status(
        Command::new("npm")
            .args(["pack", PACKAGE, "--silent"])
            .current_dir(&dir),
    )?;
    let tarball = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .context("npm pack left no .tgz")?;
    status(
        Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .current_dir(&dir),
    )?;
    Ok(dir)
}

/// A country as the output lists it.
struct Country {
    code: String,
    name: String,
    path: String,
}

/// world.txt's text from the 1:110m and 1:50m TopoJSON files and the ISO 3166-1 table.
fn generate(coarse: &Value, fine: &Value, iso: &Value, version: &str) -> Result<String> {
    let names = iso_names(iso)?;
    let coarse_shapes = shapes(coarse)?;
    let fine_shapes = shapes(fine)?;
    let (min, max) = bounds(
        coarse_shapes
            .iter()
            .filter(|s| s.id.as_deref() != Some(ANTARCTICA))
            .flat_map(|s| s.rings.iter().flatten()),
    );
    let scale = WIDTH / (max.0 - min.0);
    let to_view = |p: (f64, f64)| {
        (
            ((p.0 - min.0) * scale).round() as i64,
            ((max.1 - p.1) * scale).round() as i64,
        )
    };
    let height = ((max.1 - min.1) * scale).round() as i64;

    let mut countries = Vec::new();
    let mut coded = std::collections::BTreeSet::new();
    let lookup = |shape: &Shape| -> Result<Option<(String, String)>> {
        match &shape.id {
            Some(id) if id == ANTARCTICA => Ok(None),
            Some(id) => {
                let (code, name) = names.get(id).with_context(|| {
                    format!("ISO numeric {id} ({}) is not in iso-codes", shape.name)
                })?;
                Ok(Some((code.clone(), name.clone())))
            }
            None => match UNCODED.iter().find(|(name, _)| *name == shape.name) {
                Some((_, code)) => Ok(Some(((*code).to_owned(), shape.name.clone()))),
                None => bail!(
                    "{} has no ISO numeric code and no entry in UNCODED",
                    shape.name
                ),
            },
        }
    };
    for shape in &coarse_shapes {
        let Some((code, name)) = lookup(shape)? else {
            continue;
        };
        let rings: Vec<Vec<(i64, i64)>> = shape
            .rings
            .iter()
            .map(|ring| ring.iter().copied().map(to_view).collect())
            .collect();
        let path = path_data(&rings);
        if path.is_empty() {
            continue;
        }
        if code != "-" {
            coded.insert(code.clone());
        }
        countries.push(Country { code, name, path });
    }
    // Only ISO-coded countries missing above get a dot (1:50m also has shapes without a code,
    // e.g. "Indian Ocean Ter.": no country of their own to shade).
    for shape in fine_shapes.iter().filter(|s| s.id.is_some()) {
        let Some((code, name)) = lookup(shape)? else {
            continue;
        };
        if coded.contains(&code) {
            continue;
        }
        let Some(centre) = largest_ring_centre(&shape.rings) else {
            continue;
        };
        let (x, y) = to_view(centre);
        coded.insert(code.clone());
        countries.push(Country {
            code,
            name,
            path: dot(x, y),
        });
    }
    countries
        .sort_by(|a, b| (a.code == "-", &a.code, &a.name).cmp(&(b.code == "-", &b.code, &b.name)));

    let mut out = header(version);
    writeln!(out, "!viewBox 0 0 {} {height}", WIDTH as i64)?;
    for c in &countries {
        writeln!(out, "{}\t{}\t{}", c.code, c.name, c.path)?;
    }
    Ok(out)
}

fn header(version: &str) -> String {
    format!(
        "\
# crmonban world map: the country shapes of `crmonctl report --html`, read by
# crates/crmonban-report/src/map.rs.
# Generated by `cargo xtask world-map` (xtask/src/worldmap.rs); do not edit by hand.
#
# Source: Natural Earth's Admin 0 countries (public domain, naturalearthdata.com) as packaged
# in the npm package world-atlas {version} (countries-110m.json; countries-50m.json for a dot
# where a country is too small for 1:110m). world-atlas is under the ISC licence:
#   Copyright 2013-2019 Michael Bostock
#   Permission to use, copy, modify, and/or distribute this software for any purpose
#   with or without fee is hereby granted, provided that the above copyright notice
#   and this permission notice appear in all copies.
#   THE SOFTWARE IS PROVIDED \"AS IS\" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH
#   REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND
#   FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT,
#   INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS
#   OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER
#   TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF
#   THIS SOFTWARE.
# ISO 3166-1 alpha-2 codes and names: Debian's iso-codes
# ({ISO_3166}). Kosovo is XK (as GeoIP reports it);
# N. Cyprus and Somaliland have no code (land, never shaded). Antarctica is left out.
# Projection: Natural Earth (Savric et al. 2011), whole units, y down.
#
# Format: `!viewBox 0 0 W H`, then one line per country: ISO alpha-2 code (or `-`), TAB, name,
# TAB, SVG path data (relative, rings closed; fill-rule evenodd).
"
    )
}

/// ISO numeric code (three digits) -> (alpha-2 code, short name).
fn iso_names(iso: &Value) -> Result<HashMap<String, (String, String)>> {
    let entries = iso["3166-1"]
        .as_array()
        .context("iso_3166-1.json has no 3166-1 list")?;
    let mut names = HashMap::new();
    for entry in entries {
        let field = |key: &str| entry[key].as_str().map(str::to_owned);
        let (Some(numeric), Some(alpha2)) = (field("numeric"), field("alpha_2")) else {
            continue;
        };
        let name = field("common_name")
            .or_else(|| field("name"))
            .unwrap_or_else(|| alpha2.clone());
        names.insert(numeric, (alpha2, name));
    }
    Ok(names)
}

/// One country of a TopoJSON file, projected: its rings in projection units (y up).
struct Shape {
    id: Option<String>,
    name: String,
    rings: Vec<Vec<(f64, f64)>>,
}

/// The `countries` object's geometries, decoded and projected.
fn shapes(topology: &Value) -> Result<Vec<Shape>> {
    let transform = &topology["transform"];
    let number = |v: &Value| v.as_f64().context("transform is not numeric");
    let scale = (
        number(&transform["scale"][0])?,
        number(&transform["scale"][1])?,
    );
    let translate = (
        number(&transform["translate"][0])?,
        number(&transform["translate"][1])?,
    );
    let arcs: Vec<Vec<(f64, f64)>> = topology["arcs"]
        .as_array()
        .context("no arcs")?
        .iter()
        .map(|arc| decode_arc(arc, scale, translate))
        .collect::<Result<_>>()?;
    let geometries = topology["objects"]["countries"]["geometries"]
        .as_array()
        .context("no countries")?;
    let mut shapes = Vec::new();
    for geometry in geometries {
        let polygons: Vec<&Value> = match geometry["type"].as_str() {
            Some("Polygon") => vec![&geometry["arcs"]],
            Some("MultiPolygon") => geometry["arcs"]
                .as_array()
                .context("MultiPolygon without arcs")?
                .iter()
                .collect(),
            _ => continue,
        };
        let mut rings = Vec::new();
        for polygon in polygons {
            for ring in polygon.as_array().context("polygon is not a list")? {
                let indices: Vec<i64> = ring
                    .as_array()
                    .context("ring is not a list")?
                    .iter()
                    .map(|i| i.as_i64().context("arc index is not an integer"))
                    .collect::<Result<_>>()?;
                for part in split_at_antimeridian(stitch(&arcs, &indices)?) {
                    rings.push(part.into_iter().map(project).collect());
                }
            }
        }
        shapes.push(Shape {
            id: geometry["id"].as_str().map(str::to_owned),
            name: geometry["properties"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            rings,
        });
    }
    Ok(shapes)
}

/// Kept for the tests: every country code in `text` (world.txt) with its path.
#[cfg(test)]
fn parse_output(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let mut fields = l.splitn(3, '\t');
            Some((fields.next()?.to_owned(), fields.nth(1)?.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_topology_becomes_coded_lines() {
        // One square country (ISO 276, DE) and, in the fine file, a small one (ISO 702, SG).
        let coarse = serde_json::json!({
            "transform": {"scale": [1.0, 1.0], "translate": [0.0, 0.0]},
            "arcs": [[[0, 0], [10, 0], [0, 10], [-10, 0], [0, -10]]],
            "objects": {"countries": {"geometries": [
                {"type": "Polygon", "arcs": [[0]], "id": "276", "properties": {"name": "Germany"}},
                {"type": "Polygon", "arcs": [[0]], "id": "010", "properties": {"name": "Antarctica"}}
            ]}}
        });
        let fine = serde_json::json!({
            "transform": {"scale": [0.1, 0.1], "translate": [20.0, 1.0]},
            "arcs": [[[0, 0], [2, 0], [0, 2], [-2, 0], [0, -2]]],
            "objects": {"countries": {"geometries": [
                {"type": "Polygon", "arcs": [[0]], "id": "702", "properties": {"name": "Singapore"}},
                {"type": "Polygon", "arcs": [[0]], "id": "276", "properties": {"name": "Germany"}}
            ]}}
        });
        let iso = serde_json::json!({"3166-1": [
            {"alpha_2": "DE", "numeric": "276", "name": "Germany"},
            {"alpha_2": "SG", "numeric": "702", "name": "Singapore"},
            {"alpha_2": "AQ", "numeric": "010", "name": "Antarctica"}
        ]});
        let text = generate(&coarse, &fine, &iso, "9.9.9").unwrap();
        assert!(text.contains("world-atlas 9.9.9"), "{text}");
        assert!(text.contains("\n!viewBox 0 0 2000 "), "{text}");
        let countries = parse_output(&text);
        assert_eq!(countries.keys().collect::<Vec<_>>(), ["DE", "SG"], "{text}");
        assert!(countries["DE"].starts_with("M0 "), "{text}");
        assert!(countries["SG"].contains("a3 3 0 1 0"), "{text}");
        // A country with neither a code nor an UNCODED entry is an error, not a silent gap.
        let mut unknown = coarse.clone();
        unknown["objects"]["countries"]["geometries"][0]["id"] = Value::Null;
        assert!(generate(&unknown, &fine, &iso, "9.9.9").is_err());
    }
}
