//! The geometry of `cargo xtask world-map`: TopoJSON arcs decoded and stitched into rings,
//! rings cut at the antimeridian, the Natural Earth projection, and rings written as compact
//! relative SVG path data (or a dot, for a country too small to draw).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde_json::Value;

/// A small country's dot radius, in path units.
const DOT_RADIUS: i64 = 3;

/// A quantized, delta-encoded TopoJSON arc as longitude/latitude degrees.
pub(super) fn decode_arc(
    arc: &Value,
    scale: (f64, f64),
    translate: (f64, f64),
) -> Result<Vec<(f64, f64)>> {
    let (mut x, mut y) = (0i64, 0i64);
    let mut points = Vec::new();
    for point in arc.as_array().context("arc is not a list")? {
        x += point[0].as_i64().context("arc delta is not an integer")?;
        y += point[1].as_i64().context("arc delta is not an integer")?;
        points.push((
            x as f64 * scale.0 + translate.0,
            y as f64 * scale.1 + translate.1,
        ));
    }
    Ok(points)
}

/// A ring from its arcs: index `i` is arc i, `!i` (negative) arc i reversed; each arc after the
/// first starts where the previous one ended, so that shared point is kept once.
pub(super) fn stitch(arcs: &[Vec<(f64, f64)>], indices: &[i64]) -> Result<Vec<(f64, f64)>> {
    let mut ring: Vec<(f64, f64)> = Vec::new();
    for &index in indices {
        let (arc, reversed) = if index >= 0 {
            (index, false)
        } else {
            (!index, true)
        };
        let arc = arcs
            .get(usize::try_from(arc)?)
            .with_context(|| format!("arc {arc} does not exist"))?;
        let mut points = arc.clone();
        if reversed {
            points.reverse();
        }
        let skip = usize::from(!ring.is_empty());
        ring.extend(points.into_iter().skip(skip));
    }
    Ok(ring)
}

/// A ring (longitude/latitude degrees) that crosses the antimeridian (Fiji, Chukotka: a step
/// of more than 180 degrees between two points) as the parts on either side, each closed
/// along the meridian; a ring that does not cross, as it is. Projected whole, a crossing ring
/// would be drawn as a band across the map.
pub(super) fn split_at_antimeridian(ring: Vec<(f64, f64)>) -> Vec<Vec<(f64, f64)>> {
    if !ring.windows(2).any(|w| (w[1].0 - w[0].0).abs() > 180.0) {
        return vec![ring];
    }
    // Continuous longitudes (beyond ±180 where the ring goes on across), then the ring cut to
    // each 360-degree span it reaches, shifted back.
    let mut unwrapped: Vec<(f64, f64)> = Vec::with_capacity(ring.len());
    for (lon, lat) in ring {
        let lon = match unwrapped.last() {
            Some(&(previous, _)) => lon + 360.0 * ((previous - lon) / 360.0).round(),
            None => lon,
        };
        unwrapped.push((lon, lat));
    }
    let (west, east) = bounds(unwrapped.iter());
    let mut parts = Vec::new();
    let mut offset = -360.0 * ((-west.0 - 180.0) / 360.0).ceil().max(0.0);
    while offset - 180.0 < east.0 {
        let shifted: Vec<(f64, f64)> = unwrapped.iter().map(|&(x, y)| (x - offset, y)).collect();
        let part = clip(&clip(&shifted, -180.0, true), 180.0, false);
        if part.len() >= 3 {
            parts.push(part);
        }
        offset += 360.0;
    }
    parts
}

/// Sutherland–Hodgman: the part of `ring` east of longitude `at` (`keep_east`) or west of it.
pub(super) fn clip(ring: &[(f64, f64)], at: f64, keep_east: bool) -> Vec<(f64, f64)> {
    let inside = |p: (f64, f64)| if keep_east { p.0 >= at } else { p.0 <= at };
    let mut out = Vec::new();
    for (i, &current) in ring.iter().enumerate() {
        let previous = ring[(i + ring.len() - 1) % ring.len()];
        if inside(current) != inside(previous) {
            let t = (at - previous.0) / (current.0 - previous.0);
            out.push((at, previous.1 + t * (current.1 - previous.1)));
        }
        if inside(current) {
            out.push(current);
        }
    }
    out
}

/// The Natural Earth projection of longitude/latitude degrees, in units of the earth's radius,
/// y up: the published polynomials (Šavrič, Jenny, Patterson et al. 2011, "A polynomial
/// equation for the Natural Earth projection").
pub(super) fn project((lon, lat): (f64, f64)) -> (f64, f64) {
    let (lambda, phi) = (lon.to_radians(), lat.to_radians());
    let p2 = phi * phi;
    let p4 = p2 * p2;
    let x = lambda
        * (0.870700 - 0.131979 * p2 - 0.013791 * p4 + 0.003971 * p4 * p4 * p2
            - 0.001529 * p4 * p4 * p4);
    let y = phi
        * (1.007226 + 0.015085 * p2 - 0.044475 * p4 * p2 + 0.028874 * p4 * p4
            - 0.005916 * p4 * p4 * p2);
    (x, y)
}

/// The smallest box holding `points`: (min x, min y), (max x, max y).
pub(super) fn bounds<'a>(points: impl Iterator<Item = &'a (f64, f64)>) -> ((f64, f64), (f64, f64)) {
    let mut min = (f64::MAX, f64::MAX);
    let mut max = (f64::MIN, f64::MIN);
    for &(x, y) in points {
        min = (min.0.min(x), min.1.min(y));
        max = (max.0.max(x), max.1.max(y));
    }
    (min, max)
}

/// Rings as relative SVG path data: `M x y l dx dy ... z` per ring, repeated points dropped,
/// rings that rounding reduced to fewer than three points left out.
pub(super) fn path_data(rings: &[Vec<(i64, i64)>]) -> String {
    let mut out = String::new();
    for ring in rings {
        let mut points: Vec<(i64, i64)> = Vec::with_capacity(ring.len());
        for &p in ring {
            if points.last() != Some(&p) {
                points.push(p);
            }
        }
        if points.len() > 1 && points.first() == points.last() {
            points.pop();
        }
        if points.len() < 3 {
            continue;
        }
        let (mut x, mut y) = points[0];
        let _ = write!(out, "M{x} {y}l");
        let mut first = true;
        for &(px, py) in &points[1..] {
            let (dx, dy) = (px - x, py - y);
            if !first && dx >= 0 {
                out.push(' ');
            }
            let _ = write!(out, "{dx}");
            if dy >= 0 {
                out.push(' ');
            }
            let _ = write!(out, "{dy}");
            (x, y) = (px, py);
            first = false;
        }
        out.push('z');
    }
    out
}

/// A dot of [`DOT_RADIUS`] centred on (x, y), as path data (two half circles).
pub(super) fn dot(x: i64, y: i64) -> String {
    let r = DOT_RADIUS;
    format!(
        "M{} {y}a{r} {r} 0 1 0 {} 0a{r} {r} 0 1 0 {} 0z",
        x - r,
        2 * r,
        -2 * r
    )
}

/// The area centroid of the largest ring (projection units), or its first point when its area
/// is nil; None without rings.
pub(super) fn largest_ring_centre(rings: &[Vec<(f64, f64)>]) -> Option<(f64, f64)> {
    let mut best: Option<(f64, (f64, f64))> = None;
    for ring in rings.iter().filter(|r| !r.is_empty()) {
        let (mut area, mut cx, mut cy) = (0.0, 0.0, 0.0);
        for (a, b) in ring.iter().zip(ring.iter().cycle().skip(1)) {
            let cross = a.0 * b.1 - b.0 * a.1;
            area += cross;
            cx += (a.0 + b.0) * cross;
            cy += (a.1 + b.1) * cross;
        }
        let centre = if area.abs() > f64::EPSILON {
            (cx / (3.0 * area), cy / (3.0 * area))
        } else {
            ring[0]
        };
        if best.is_none_or(|(size, _)| area.abs() > size) {
            best = Some((area.abs(), centre));
        }
    }
    best.map(|(_, centre)| centre)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arcs_are_decoded_from_deltas_and_stitched_with_reversals() {
        let arc = serde_json::json!([[0, 0], [10, 0], [0, 5]]);
        let decoded = decode_arc(&arc, (0.5, 1.0), (-10.0, 20.0)).unwrap();
        assert_eq!(decoded, vec![(-10.0, 20.0), (-5.0, 20.0), (-5.0, 25.0)]);
        let arcs = vec![
            vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)],
            vec![(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)],
        ];
        // Arc 0 forwards, then arc 1 backwards (!1 = -2): the shared corner appears once.
        let ring = stitch(&arcs, &[0, -2]).unwrap();
        assert_eq!(
            ring,
            vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]
        );
        assert!(stitch(&arcs, &[7]).is_err());
    }

    #[test]
    fn a_ring_across_the_antimeridian_is_split_in_two() {
        // 170E..170W, written as Natural Earth does (the east part in negative longitudes).
        let ring = vec![
            (170.0, 0.0),
            (-170.0, 0.0),
            (-170.0, 10.0),
            (170.0, 10.0),
            (170.0, 0.0),
        ];
        let mut parts = split_at_antimeridian(ring);
        parts.sort_by(|a, b| bounds(a.iter()).0.0.total_cmp(&bounds(b.iter()).0.0));
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!(bounds(parts[0].iter()), ((-180.0, 0.0), (-170.0, 10.0)));
        assert_eq!(bounds(parts[1].iter()), ((170.0, 0.0), (180.0, 10.0)));
        let inland = vec![(10.0, 0.0), (20.0, 0.0), (20.0, 10.0), (10.0, 0.0)];
        assert_eq!(split_at_antimeridian(inland.clone()), vec![inland]);
    }

    #[test]
    fn the_projection_keeps_the_origin_and_narrows_towards_the_poles() {
        assert_eq!(project((0.0, 0.0)), (0.0, 0.0));
        let equator = project((180.0, 0.0)).0;
        let north = project((180.0, 60.0)).0;
        assert!((equator - std::f64::consts::PI * 0.8707).abs() < 1e-9);
        assert!(north < equator && north > 0.0);
        assert!(project((0.0, 45.0)).1 > 0.0 && project((0.0, -45.0)).1 < 0.0);
    }

    #[test]
    fn paths_are_relative_closed_and_drop_degenerate_rings() {
        let square = vec![(10, 10), (20, 10), (20, 20), (10, 20), (10, 10)];
        let sliver = vec![(5, 5), (5, 5), (6, 5)];
        assert_eq!(
            path_data(&[square, sliver]),
            "M10 10l10 0 0 10-10 0z".to_owned()
        );
        assert_eq!(dot(10, 20), "M7 20a3 3 0 1 0 6 0a3 3 0 1 0 -6 0z");
    }
}
