//! Video layout of a mixed view (spec/owt-compat.md §3.3 and §1.11, user guide §3.5.1): which
//! templates a view has, which template and region each mixed input gets, the `video.layout`
//! value clients are told about, and the pixel rectangles the compositor draws into. Sans-IO:
//! plain values in, plain values out.
//!
//! - [`templates_for_view`] generates the base templates (`fluid`, `lecture`, `void`) the way
//!   OWT's data access layer does for the view's `maxInput`, and merges the custom templates into
//!   them by region count (same count replaces, otherwise inserted before the first larger
//!   template or appended).
//! - [`choose_template`] picks the smallest template that holds all inputs (the largest when
//!   there are more inputs than regions); [`assign`] fills its regions with the inputs in order,
//!   the active input first in the primary region when `keepActiveInputPrimary` is on.
//! - [`layout_update`] builds the `video.layout` stream update (`"n/d"` strings, not reduced).
//! - [`region_rect`] and [`pixel_rects`] turn fractions into even-aligned pixel rectangles on the
//!   canvas, with `letterbox` (whole input, aspect kept, centred, bars in bgColor) or `crop`
//!   (region filled, input cropped around its centre).
//! - [`parse_rest_layout`] validates the value of a REST `replace /info/layout` update and
//!   [`template_from_rest`] turns it into a template plus an assignment.
//!
//! Fractions keep the numerator and denominator they were built with, like OWT's
//! `{numerator, denominator}`: the 2×2 fluid grid's first region is at `"0/2"`, not `"0/1"`.
//! Custom template areas are reduced when read (OWT converts them with fraction.js).
//!
//! Differences from OWT, on purpose: template choice among templates with the same region count
//! takes the first one (OWT keys templates by count, so a lecture template generated after a
//! custom one with the same count would win); custom templates with no region are ignored;
//! [`layout_update`] lists empty regions too (without `stream`), where OWT's notification only
//! lists occupied regions; the REST layout is also rejected for duplicate region ids and area
//! values outside [0, 1].

use std::collections::{HashMap, HashSet};
use std::fmt;

use owt_types::room::{parse_fraction, CustomTemplate, FitPolicy, TemplateBase, ViewVideo};
use serde_json::{json, Map, Value};

/// A rational number as OWT keeps it in layouts: not reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fraction {
    pub num: u64,
    pub den: u64,
}

impl Fraction {
    pub const ZERO: Fraction = Fraction { num: 0, den: 1 };
    pub const ONE: Fraction = Fraction { num: 1, den: 1 };

    pub const fn new(num: u64, den: u64) -> Fraction {
        Fraction { num, den }
    }

    /// `"n/d"` keeps `n` and `d` as written (`"2/4"` stays 2/4); a decimal or integer (`"0.5"`,
    /// `"1"`) becomes its reduced fraction. `None` for anything else or a zero denominator.
    pub fn parse(text: &str) -> Option<Fraction> {
        if let Some((n, d)) = text.split_once('/') {
            let (num, den) = (digits(n)?, digits(d)?);
            (den != 0).then_some(Fraction { num, den })
        } else {
            parse_fraction(text).map(|(num, den)| Fraction { num, den })
        }
    }

    /// In [0, 1] with a non-zero denominator.
    pub fn is_unit(self) -> bool {
        self.den != 0 && self.num <= self.den
    }

    /// `len × self`, rounded down (0 for a zero denominator).
    pub fn of(self, len: u32) -> u64 {
        if self.den == 0 {
            return 0;
        }
        (u128::from(len) * u128::from(self.num) / u128::from(self.den)) as u64
    }

    /// `len × (self + other)`, rounded down, computed exactly.
    fn sum_of(self, other: Fraction, len: u32) -> u64 {
        if self.den == 0 || other.den == 0 {
            return 0;
        }
        let num = u128::from(self.num) * u128::from(other.den) + u128::from(other.num) * u128::from(self.den);
        let den = u128::from(self.den) * u128::from(other.den);
        (u128::from(len) * num / den).min(u128::from(u64::MAX)) as u64
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// 1 to 18 ASCII digits.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// One rectangular region of a template, relative to the mixed frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRegion {
    pub id: String,
    pub left: Fraction,
    pub top: Fraction,
    pub width: Fraction,
    pub height: Fraction,
}

impl TemplateRegion {
    fn square(id: usize, left: Fraction, top: Fraction, size: Fraction) -> TemplateRegion {
        TemplateRegion { id: id.to_string(), left, top, width: size, height: size }
    }

    /// `{id, shape: "rectangle", area: {left, top, width, height}}` with `"n/d"` strings.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "shape": "rectangle",
            "area": {
                "left": self.left.to_string(),
                "top": self.top.to_string(),
                "width": self.width.to_string(),
                "height": self.height.to_string(),
            }
        })
    }
}

/// A layout for a given number of inputs: its regions in fill order and, for custom templates,
/// the id of the region that shows the active input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    pub regions: Vec<TemplateRegion>,
    pub primary: Option<String>,
}

impl Template {
    pub fn region(&self, id: &str) -> Option<&TemplateRegion> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// Index of the region that gets the active input: `primary` if it names a region, else
    /// region `"1"`, else the first region.
    pub fn primary_index(&self) -> Option<usize> {
        let by_id = |id: &str| self.regions.iter().position(|r| r.id == id);
        self.primary.as_deref().and_then(by_id).or_else(|| by_id("1")).or(if self.regions.is_empty() {
            None
        } else {
            Some(0)
        })
    }

    fn from_custom(custom: &CustomTemplate) -> Template {
        // Area strings are validated with the room; an unreadable one counts as 0 (OWT's default).
        let read = |text: &str| parse_fraction(text).map(|(n, d)| Fraction::new(n, d)).unwrap_or(Fraction::ZERO);
        Template {
            regions: custom
                .region
                .iter()
                .map(|r| TemplateRegion {
                    id: r.id.clone(),
                    left: read(&r.area.left),
                    top: read(&r.area.top),
                    width: read(&r.area.width),
                    height: read(&r.area.height),
                })
                .collect(),
            primary: custom.primary.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Templates of a view
// ---------------------------------------------------------------------------------------------

/// The view's templates in OWT's order: the base templates for `maxInput`, with the custom
/// templates merged in one after the other.
pub fn templates_for_view(video: &ViewVideo) -> Vec<Template> {
    let mut templates = match video.layout.templates.base {
        TemplateBase::Fluid => fluid_templates(video.max_input),
        TemplateBase::Lecture => lecture_templates(video.max_input),
        TemplateBase::Void => Vec::new(),
    };
    for custom in &video.layout.templates.custom {
        let template = Template::from_custom(custom);
        let len = template.regions.len();
        if len == 0 {
            continue;
        }
        match templates.iter().position(|t| t.regions.len() >= len) {
            None => templates.push(template),
            Some(pos) if templates[pos].regions.len() == len => templates[pos] = template,
            Some(pos) => templates.insert(pos, template),
        }
    }
    templates
}

/// Grids of d×d equal regions for d = 1 … ⌈√maxInput⌉, ids row-major from "1".
fn fluid_templates(max_input: u32) -> Vec<Template> {
    let mut max_div = 0u64;
    while max_div * max_div < u64::from(max_input) {
        max_div += 1;
    }
    (1..=max_div)
        .map(|d| {
            let size = Fraction::new(1, d);
            let regions = (0..d * d)
                .map(|i| TemplateRegion::square(i as usize + 1, Fraction::new(i % d, d), Fraction::new(i / d, d), size))
                .collect();
            Template { regions, primary: None }
        })
        .collect()
}

/// One full region, the 2/3 + five 1/3 template, then (maxInput > 6) one main region with a
/// right column and a bottom row of 1/d regions for d = 4 … min(7, ⌈maxInput/2⌉), then
/// (maxInput > 14) a main region with two such rings for d = 4 … min(7, ⌈(maxInput+3)/4⌉).
fn lecture_templates(max_input: u32) -> Vec<Template> {
    let third = Fraction::new(1, 3);
    let two_thirds = Fraction::new(2, 3);
    let zero = Fraction::ZERO;
    let mut result = vec![
        Template { regions: vec![TemplateRegion::square(1, zero, zero, Fraction::ONE)], primary: None },
        Template {
            regions: vec![
                TemplateRegion::square(1, zero, zero, two_thirds),
                TemplateRegion::square(2, two_thirds, zero, third),
                TemplateRegion::square(3, two_thirds, third, third),
                TemplateRegion::square(4, two_thirds, two_thirds, third),
                TemplateRegion::square(5, third, two_thirds, third),
                TemplateRegion::square(6, zero, two_thirds, third),
            ],
            primary: None,
        },
    ];
    let max_input = u64::from(max_input);
    if max_input > 6 {
        for d in 4..=max_input.div_ceil(2).min(7) {
            let main = Fraction::new(d - 1, d);
            let minor = Fraction::new(1, d);
            let mut regions = vec![TemplateRegion::square(1, zero, zero, main)];
            for y in 0..d {
                regions.push(TemplateRegion::square(regions.len() + 1, main, Fraction::new(y, d), minor));
            }
            for x in (0..d - 1).rev() {
                regions.push(TemplateRegion::square(regions.len() + 1, Fraction::new(x, d), main, minor));
            }
            result.push(Template { regions, primary: None });
        }
    }
    if max_input > 14 {
        for d in 4..=(max_input + 3).div_ceil(4).min(7) {
            let main = Fraction::new(d - 2, d);
            let outer = Fraction::new(d - 1, d);
            let minor = Fraction::new(1, d);
            let mut regions = vec![TemplateRegion::square(1, zero, zero, main)];
            for y in 0..d - 1 {
                regions.push(TemplateRegion::square(regions.len() + 1, main, Fraction::new(y, d), minor));
            }
            for x in (0..d - 2).rev() {
                regions.push(TemplateRegion::square(regions.len() + 1, Fraction::new(x, d), main, minor));
            }
            for y in 0..d {
                regions.push(TemplateRegion::square(regions.len() + 1, outer, Fraction::new(y, d), minor));
            }
            for x in (0..d - 1).rev() {
                regions.push(TemplateRegion::square(regions.len() + 1, Fraction::new(x, d), outer, minor));
            }
            result.push(Template { regions, primary: None });
        }
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Template choice and region assignment
// ---------------------------------------------------------------------------------------------

/// The template with the fewest regions that still holds `input_count` inputs (the first of
/// equals); with more inputs than any template holds, the largest. `None` without templates.
pub fn choose_template(templates: &[Template], input_count: usize) -> Option<&Template> {
    let fitting = templates.iter().filter(|t| t.regions.len() >= input_count).reduce(|best, t| {
        if t.regions.len() < best.regions.len() {
            t
        } else {
            best
        }
    });
    fitting.or_else(|| templates.iter().reduce(|best, t| if t.regions.len() > best.regions.len() { t } else { best }))
}

/// Every region of `template` in order with the stream it shows: the inputs fill the regions in
/// order (a repeated stream id counts once; inputs beyond the last region are not shown). With
/// `primary_first` naming one of the inputs (the active input under `keepActiveInputPrimary`),
/// that input takes the primary region ([`Template::primary_index`]) and the others fill the
/// remaining regions in order.
pub fn assign(template: &Template, inputs: &[String], primary_first: Option<&str>) -> Vec<(String, Option<String>)> {
    let mut seen = HashSet::new();
    let mut rest: Vec<&String> = inputs.iter().filter(|s| seen.insert(s.as_str())).collect();
    let mut slots: Vec<Option<String>> = vec![None; template.regions.len()];
    if let (Some(active), Some(primary)) = (primary_first, template.primary_index()) {
        if let Some(pos) = rest.iter().position(|s| s.as_str() == active) {
            slots[primary] = Some(rest.remove(pos).clone());
        }
    }
    let mut rest = rest.into_iter();
    for slot in slots.iter_mut().filter(|s| s.is_none()) {
        *slot = rest.next().cloned();
    }
    template.regions.iter().zip(slots).map(|(r, s)| (r.id.clone(), s)).collect()
}

/// The `video.layout` value of a stream update (spec §1.11):
/// `[{stream?, region: {id, shape: "rectangle", area: {left, top, width, height}}}]` in the
/// assignment's order, `"n/d"` strings, `stream` left out for an empty region. Assigned region
/// ids the template does not have are skipped.
pub fn layout_update(assignment: &[(String, Option<String>)], template: &Template) -> Value {
    let items = assignment
        .iter()
        .filter_map(|(region_id, stream)| {
            let region = template.region(region_id)?;
            let mut item = Map::new();
            if let Some(stream) = stream {
                item.insert("stream".into(), Value::String(stream.clone()));
            }
            item.insert("region".into(), region.to_json());
            Some(Value::Object(item))
        })
        .collect();
    Value::Array(items)
}

// ---------------------------------------------------------------------------------------------
// Pixel geometry
// ---------------------------------------------------------------------------------------------

/// A pixel rectangle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Where the compositor draws one input: the part `src_crop` of the input frame, scaled into
/// `dst` on the canvas. With letterbox `src_crop` is the whole frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub stream_id: String,
    pub region_id: String,
    pub dst: Rect,
    pub src_crop: Rect,
}

fn even(v: u64) -> u32 {
    (v & !1).min(u64::from(u32::MAX - 1)) as u32
}

/// `v` rounded down to even, but at least 2 (or `limit` if smaller) so a thin input stays visible.
fn even_at_least_two(v: u64, limit: u32) -> u32 {
    even(v).max(2).min(limit)
}

/// The region's pixel rectangle on a `out_w`×`out_h` canvas: edges at the fractions rounded
/// down to even pixels and clipped to the canvas, so neighbouring regions share their edges.
pub fn region_rect(region: &TemplateRegion, out_w: u32, out_h: u32) -> Rect {
    let (max_x, max_y) = (u64::from(out_w & !1), u64::from(out_h & !1));
    let x0 = even(region.left.of(out_w).min(max_x));
    let y0 = even(region.top.of(out_h).min(max_y));
    let x1 = even(region.left.sum_of(region.width, out_w).min(max_x));
    let y1 = even(region.top.sum_of(region.height, out_h).min(max_y));
    Rect { x: x0, y: y0, w: x1.saturating_sub(x0), h: y1.saturating_sub(y0) }
}

/// Where an `in_w`×`in_h` frame goes inside `region` (a canvas rectangle) under `fit`.
pub fn fit_rect(region: Rect, in_w: u32, in_h: u32, fit: FitPolicy) -> Option<(Rect, Rect)> {
    if region.w == 0 || region.h == 0 || in_w == 0 || in_h == 0 {
        return None;
    }
    let (rw, rh, iw, ih) = (u64::from(region.w), u64::from(region.h), u64::from(in_w), u64::from(in_h));
    let wider = iw * rh > ih * rw;
    match fit {
        FitPolicy::Letterbox => {
            let (w, h) = if wider {
                (region.w, even_at_least_two(rw * ih / iw, region.h))
            } else {
                (even_at_least_two(rh * iw / ih, region.w), region.h)
            };
            let dst = Rect {
                x: region.x + even(u64::from((region.w - w) / 2)),
                y: region.y + even(u64::from((region.h - h) / 2)),
                w,
                h,
            };
            Some((dst, Rect { x: 0, y: 0, w: in_w, h: in_h }))
        }
        FitPolicy::Crop => {
            let crop = if wider {
                let w = even_at_least_two(ih * rw / rh, in_w);
                Rect { x: even(u64::from((in_w - w) / 2)), y: 0, w, h: in_h }
            } else {
                let h = even_at_least_two(iw * rh / rw, in_h);
                Rect { x: 0, y: even(u64::from((in_h - h) / 2)), w: in_w, h }
            };
            Some((region, crop))
        }
    }
}

/// The compositor's draw list for one frame, in region order (later regions on top): every
/// assigned region with an input whose frame size is known in `input_sizes` (stream id →
/// width, height). Regions without an input, or whose input has no frame yet, stay bgColor.
pub fn pixel_rects(
    template: &Template,
    assignment: &[(String, Option<String>)],
    out_w: u32,
    out_h: u32,
    input_sizes: &HashMap<String, (u32, u32)>,
    fit: FitPolicy,
) -> Vec<Placement> {
    assignment
        .iter()
        .filter_map(|(region_id, stream)| {
            let stream = stream.as_ref()?;
            let region = template.region(region_id)?;
            let &(in_w, in_h) = input_sizes.get(stream)?;
            let (dst, src_crop) = fit_rect(region_rect(region, out_w, out_h), in_w, in_h, fit)?;
            Some(Placement { stream_id: stream.clone(), region_id: region_id.clone(), dst, src_crop })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// REST layout
// ---------------------------------------------------------------------------------------------

fn only_members(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(format!("{at}: unknown member \"{key}\"")),
        None => Ok(()),
    }
}

fn parse_region(value: Option<&Value>, at: &str) -> Result<TemplateRegion, String> {
    let obj = match value {
        Some(Value::Object(obj)) => obj,
        Some(_) => return Err(format!("{at}: must be an object")),
        None => return Err(format!("{at}: is required")),
    };
    only_members(obj, &["id", "shape", "area"], at)?;
    let id = match obj.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err(format!("{at}.id: must be a non-empty string")),
    };
    if obj.get("shape") != Some(&Value::String("rectangle".into())) {
        return Err(format!("{at}.shape: must be \"rectangle\""));
    }
    let area = match obj.get("area") {
        Some(Value::Object(area)) => area,
        _ => return Err(format!("{at}.area: must be an object {{left, top, width, height}}")),
    };
    only_members(area, &["left", "top", "width", "height"], &format!("{at}.area"))?;
    let member = |name: &str| -> Result<Fraction, String> {
        match area.get(name) {
            Some(Value::String(text)) => Fraction::parse(text)
                .filter(|f| f.is_unit())
                .ok_or_else(|| format!("{at}.area.{name}: must be a fraction \"n/d\" between 0 and 1, got \"{text}\"")),
            Some(_) => Err(format!("{at}.area.{name}: must be a string \"n/d\"")),
            None => Err(format!("{at}.area.{name}: is required")),
        }
    };
    Ok(TemplateRegion {
        id,
        left: member("left")?,
        top: member("top")?,
        width: member("width")?,
        height: member("height")?,
    })
}

/// Validates the value of a REST `{op: "replace", path: "/info/layout", value}` stream update
/// (spec §2.4): an array of `{stream?, region: {id, shape: "rectangle", area: {left, top, width,
/// height}}}` with area strings in [0, 1]; regions without a stream only at the end; no stream
/// and no region id twice. Fractions keep their written form. The message names the item.
pub fn parse_rest_layout(value: &Value) -> Result<Vec<(Option<String>, TemplateRegion)>, String> {
    let items = value.as_array().ok_or("layout: must be an array")?;
    let mut streams = HashSet::new();
    let mut region_ids = HashSet::new();
    let mut first_empty: Option<usize> = None;
    let mut result = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("layout[{i}]");
        let obj = item.as_object().ok_or_else(|| format!("{at}: must be an object"))?;
        only_members(obj, &["stream", "region"], &at)?;
        let stream = match obj.get("stream") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => return Err(format!("{at}.stream: must be a non-empty string")),
        };
        let region = parse_region(obj.get("region"), &format!("{at}.region"))?;
        if !region_ids.insert(region.id.clone()) {
            return Err(format!("{at}.region.id: region \"{}\" appears twice", region.id));
        }
        match (&stream, first_empty) {
            (Some(_), Some(empty)) => {
                return Err(format!(
                    "{at}: has a stream after the empty region layout[{empty}]; empty regions must come last"
                ))
            }
            (Some(s), None) if !streams.insert(s.clone()) => {
                return Err(format!("{at}.stream: stream \"{s}\" appears twice"));
            }
            (None, None) => first_empty = Some(i),
            _ => {}
        }
        result.push((stream, region));
    }
    Ok(result)
}

/// A parsed REST layout as a template (no primary) and the matching assignment.
pub fn template_from_rest(layout: &[(Option<String>, TemplateRegion)]) -> (Template, Vec<(String, Option<String>)>) {
    let template = Template { regions: layout.iter().map(|(_, r)| r.clone()).collect(), primary: None };
    let assignment = layout.iter().map(|(s, r)| (r.id.clone(), s.clone())).collect();
    (template, assignment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use owt_types::room::{Area, Region, RegionShape};

    fn f(num: u64, den: u64) -> Fraction {
        Fraction::new(num, den)
    }

    fn view(base: TemplateBase, max_input: u32, custom: Vec<CustomTemplate>) -> ViewVideo {
        let mut video = ViewVideo { max_input, ..ViewVideo::default() };
        video.layout.templates.base = base;
        video.layout.templates.custom = custom;
        video
    }

    fn counts(templates: &[Template]) -> Vec<usize> {
        templates.iter().map(|t| t.regions.len()).collect()
    }

    fn custom(areas: &[[&str; 4]], primary: Option<&str>) -> CustomTemplate {
        CustomTemplate {
            primary: primary.map(str::to_string),
            region: areas
                .iter()
                .enumerate()
                .map(|(i, a)| Region {
                    id: (i + 1).to_string(),
                    shape: RegionShape::Rectangle,
                    area: Area { left: a[0].into(), top: a[1].into(), width: a[2].into(), height: a[3].into() },
                })
                .collect(),
        }
    }

    fn custom_n(n: usize) -> CustomTemplate {
        custom(&vec![["0", "0", "1/2", "1/2"]; n], None)
    }

    fn pos(r: &TemplateRegion) -> (Fraction, Fraction, Fraction, Fraction) {
        (r.left, r.top, r.width, r.height)
    }

    fn strings(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fluid_counts() {
        assert_eq!(counts(&templates_for_view(&ViewVideo::default())), [1, 4, 9, 16]);
        assert_eq!(counts(&templates_for_view(&view(TemplateBase::Fluid, 17, vec![]))), [1, 4, 9, 16, 25]);
        assert_eq!(counts(&templates_for_view(&view(TemplateBase::Fluid, 5, vec![]))), [1, 4, 9]);
        assert_eq!(counts(&templates_for_view(&view(TemplateBase::Fluid, 1, vec![]))), [1]);
    }

    #[test]
    fn fluid_regions_row_major_not_reduced() {
        let templates = templates_for_view(&ViewVideo::default());
        let four = &templates[1];
        let ids: Vec<&str> = four.regions.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "3", "4"]);
        assert_eq!(pos(&four.regions[0]), (f(0, 2), f(0, 2), f(1, 2), f(1, 2)));
        assert_eq!(pos(&four.regions[1]), (f(1, 2), f(0, 2), f(1, 2), f(1, 2)));
        assert_eq!(pos(&four.regions[3]), (f(1, 2), f(1, 2), f(1, 2), f(1, 2)));
        assert_eq!(pos(&templates[0].regions[0]), (f(0, 1), f(0, 1), f(1, 1), f(1, 1)));
        let nine = &templates[2];
        assert_eq!(pos(&nine.regions[5]), (f(2, 3), f(1, 3), f(1, 3), f(1, 3)));
        assert_eq!(nine.regions[5].id, "6");
        assert!(four.primary.is_none());
    }

    #[test]
    fn lecture_counts() {
        let lecture = |m| counts(&templates_for_view(&view(TemplateBase::Lecture, m, vec![])));
        assert_eq!(lecture(1), [1, 6]);
        assert_eq!(lecture(6), [1, 6]);
        assert_eq!(lecture(7), [1, 6, 8]);
        assert_eq!(lecture(9), [1, 6, 8, 10]);
        assert_eq!(lecture(14), [1, 6, 8, 10, 12, 14]);
        assert_eq!(lecture(15), [1, 6, 8, 10, 12, 14, 13, 17]);
        assert_eq!(lecture(16), [1, 6, 8, 10, 12, 14, 13, 17]);
        assert_eq!(lecture(25), [1, 6, 8, 10, 12, 14, 13, 17, 21, 25]);
        assert_eq!(lecture(256), [1, 6, 8, 10, 12, 14, 13, 17, 21, 25]);
    }

    #[test]
    fn lecture_six_regions() {
        let templates = templates_for_view(&view(TemplateBase::Lecture, 6, vec![]));
        let six = &templates[1].regions;
        assert_eq!(pos(&six[0]), (f(0, 1), f(0, 1), f(2, 3), f(2, 3)));
        assert_eq!(pos(&six[1]), (f(2, 3), f(0, 1), f(1, 3), f(1, 3)));
        assert_eq!(pos(&six[2]), (f(2, 3), f(1, 3), f(1, 3), f(1, 3)));
        assert_eq!(pos(&six[3]), (f(2, 3), f(2, 3), f(1, 3), f(1, 3)));
        assert_eq!(pos(&six[4]), (f(1, 3), f(2, 3), f(1, 3), f(1, 3)));
        assert_eq!(pos(&six[5]), (f(0, 1), f(2, 3), f(1, 3), f(1, 3)));
        assert_eq!(six[3].id, "4");
    }

    #[test]
    fn lecture_ring_regions() {
        let templates = templates_for_view(&view(TemplateBase::Lecture, 16, vec![]));
        // d = 4, one ring: main 3/4, right column of 4, bottom row x = 2, 1, 0.
        let eight = &templates[2].regions;
        assert_eq!(pos(&eight[0]), (f(0, 1), f(0, 1), f(3, 4), f(3, 4)));
        assert_eq!(pos(&eight[1]), (f(3, 4), f(0, 4), f(1, 4), f(1, 4)));
        assert_eq!(pos(&eight[4]), (f(3, 4), f(3, 4), f(1, 4), f(1, 4)));
        assert_eq!(pos(&eight[5]), (f(2, 4), f(3, 4), f(1, 4), f(1, 4)));
        assert_eq!(pos(&eight[7]), (f(0, 4), f(3, 4), f(1, 4), f(1, 4)));
        assert_eq!(eight[7].id, "8");
        // d = 4, two rings: main 2/4, inner column (3), inner row (2), outer column (4), outer row (3).
        let thirteen = &templates[6].regions;
        assert_eq!(thirteen.len(), 13);
        assert_eq!(pos(&thirteen[0]), (f(0, 1), f(0, 1), f(2, 4), f(2, 4)));
        assert_eq!(pos(&thirteen[1]), (f(2, 4), f(0, 4), f(1, 4), f(1, 4)));
        assert_eq!(pos(&thirteen[3]), (f(2, 4), f(2, 4), f(1, 4), f(1, 4)));
        assert_eq!(pos(&thirteen[4]), (f(1, 4), f(2, 4), f(1, 4), f(1, 4)));
        assert_eq!(pos(&thirteen[5]), (f(0, 4), f(2, 4), f(1, 4), f(1, 4)));
        assert_eq!(pos(&thirteen[6]), (f(3, 4), f(0, 4), f(1, 4), f(1, 4)));
        assert_eq!(pos(&thirteen[9]), (f(3, 4), f(3, 4), f(1, 4), f(1, 4)));
        assert_eq!(pos(&thirteen[10]), (f(2, 4), f(3, 4), f(1, 4), f(1, 4)));
        assert_eq!(pos(&thirteen[12]), (f(0, 4), f(3, 4), f(1, 4), f(1, 4)));
        assert_eq!(thirteen[12].id, "13");
    }

    #[test]
    fn void_and_custom_merge() {
        assert!(templates_for_view(&view(TemplateBase::Void, 16, vec![])).is_empty());
        let only = templates_for_view(&view(TemplateBase::Void, 16, vec![custom_n(6), custom_n(2)]));
        assert_eq!(counts(&only), [2, 6]);

        // Same count replaces, smaller is inserted before the first larger, larger is appended.
        let six = custom(
            &[
                ["0", "0", "2/3", "2/3"],
                ["2/3", "0", "1/3", "1/3"],
                ["2/3", "1/3", "1/3", "1/3"],
                ["2/3", "2/3", "1/3", "1/3"],
                ["1/3", "2/3", "1/3", "1/3"],
                ["0", "2/3", "1/3", "1/3"],
            ],
            Some("2"),
        );
        let four = custom(
            &[["0", "0", "0.5", "2/4"], ["0.5", "0", "1/2", "1/2"], ["0", "1/2", "1", "1/2"], ["0", "0", "0", "0"]],
            None,
        );
        let merged = templates_for_view(&view(TemplateBase::Fluid, 16, vec![six, four, custom_n(20)]));
        assert_eq!(counts(&merged), [1, 4, 6, 9, 16, 20]);
        assert_eq!(merged[2].primary.as_deref(), Some("2"));
        assert_eq!(pos(&merged[2].regions[4]), (f(1, 3), f(2, 3), f(1, 3), f(1, 3)));
        // Custom areas are reduced like fraction.js does.
        assert_eq!(pos(&merged[1].regions[0]), (f(0, 1), f(0, 1), f(1, 2), f(1, 2)));
        assert_eq!(pos(&merged[1].regions[2]), (f(0, 1), f(1, 2), f(1, 1), f(1, 2)));

        // Lecture order is not sorted: a custom 13 goes before the 14.
        let lecture = templates_for_view(&view(TemplateBase::Lecture, 16, vec![custom_n(13), custom_n(0)]));
        assert_eq!(counts(&lecture), [1, 6, 8, 10, 12, 13, 14, 13, 17]);
        // The first of the two 13s (the custom one) is chosen.
        assert!(std::ptr::eq(choose_template(&lecture, 13).unwrap(), &lecture[5]));
    }

    #[test]
    fn choose_smallest_fitting() {
        let fluid = templates_for_view(&ViewVideo::default());
        let chosen = |t: &[Template], n| choose_template(t, n).map(|t| t.regions.len());
        assert_eq!(chosen(&fluid, 0), Some(1));
        assert_eq!(chosen(&fluid, 1), Some(1));
        assert_eq!(chosen(&fluid, 2), Some(4));
        assert_eq!(chosen(&fluid, 5), Some(9));
        assert_eq!(chosen(&fluid, 16), Some(16));
        assert_eq!(chosen(&fluid, 40), Some(16));
        let lecture = templates_for_view(&view(TemplateBase::Lecture, 16, vec![]));
        assert_eq!(chosen(&lecture, 2), Some(6));
        assert_eq!(chosen(&lecture, 11), Some(12));
        assert_eq!(chosen(&lecture, 13), Some(13));
        assert_eq!(chosen(&lecture, 15), Some(17));
        assert_eq!(chosen(&lecture, 18), Some(17));
        assert_eq!(chosen(&[], 1), None);
    }

    #[test]
    fn assign_in_order() {
        let fluid = templates_for_view(&ViewVideo::default());
        let got = assign(&fluid[1], &strings(&["a", "b", "c"]), None);
        assert_eq!(
            got,
            [
                ("1".to_string(), Some("a".to_string())),
                ("2".to_string(), Some("b".to_string())),
                ("3".to_string(), Some("c".to_string())),
                ("4".to_string(), None)
            ]
        );
        // Inputs beyond the regions are not shown; repeated ids count once.
        let got = assign(&fluid[0], &strings(&["a", "a", "b"]), None);
        assert_eq!(got, [("1".to_string(), Some("a".to_string()))]);
        let got = assign(&fluid[1], &strings(&["a", "a", "b"]), None);
        assert_eq!(got[1].1.as_deref(), Some("b"));
        assert_eq!(got[2].1, None);
    }

    #[test]
    fn assign_active_to_primary() {
        let fluid = templates_for_view(&ViewVideo::default());
        let inputs = strings(&["a", "b", "c", "d"]);
        let streams = |v: Vec<(String, Option<String>)>| v.into_iter().map(|(_, s)| s).collect::<Vec<_>>();
        let got = streams(assign(&fluid[1], &inputs, Some("c")));
        assert_eq!(got, [Some("c".into()), Some("a".into()), Some("b".into()), Some("d".into())]);
        // The active input is shown even when it would not fit in order.
        let got = streams(assign(&fluid[0], &inputs, Some("d")));
        assert_eq!(got, [Some("d".to_string())]);
        // Unknown active input: plain order.
        let got = streams(assign(&fluid[1], &inputs, Some("x")));
        assert_eq!(got, [Some("a".into()), Some("b".into()), Some("c".into()), Some("d".into())]);
        // A custom primary region.
        let mut template = fluid[1].clone();
        template.primary = Some("3".into());
        let got = streams(assign(&template, &strings(&["a", "b"]), Some("b")));
        assert_eq!(got, [Some("a".into()), None, Some("b".into()), None]);
        // A primary that names no region falls back to region "1".
        template.primary = Some("9".into());
        assert_eq!(template.primary_index(), Some(0));
        assert_eq!(Template::default().primary_index(), None);
        assert!(assign(&Template::default(), &inputs, Some("a")).is_empty());
    }

    #[test]
    fn layout_update_strings() {
        let fluid = templates_for_view(&ViewVideo::default());
        let assignment = assign(&fluid[1], &strings(&["s1", "s2", "s3"]), None);
        let value = layout_update(&assignment, &fluid[1]);
        let expected = json!([
            {"stream": "s1", "region": {"id": "1", "shape": "rectangle",
                "area": {"left": "0/2", "top": "0/2", "width": "1/2", "height": "1/2"}}},
            {"stream": "s2", "region": {"id": "2", "shape": "rectangle",
                "area": {"left": "1/2", "top": "0/2", "width": "1/2", "height": "1/2"}}},
            {"stream": "s3", "region": {"id": "3", "shape": "rectangle",
                "area": {"left": "0/2", "top": "1/2", "width": "1/2", "height": "1/2"}}},
            {"region": {"id": "4", "shape": "rectangle",
                "area": {"left": "1/2", "top": "1/2", "width": "1/2", "height": "1/2"}}},
        ]);
        assert_eq!(value, expected);
        assert_eq!(
            serde_json::to_string(&value[3]).unwrap(),
            r#"{"region":{"id":"4","shape":"rectangle","area":{"left":"1/2","top":"1/2","width":"1/2","height":"1/2"}}}"#
        );
        let one = layout_update(&assign(&fluid[0], &strings(&["s"]), None), &fluid[0]);
        assert_eq!(one[0]["region"]["area"]["width"], "1/1");
        assert_eq!(one[0]["region"]["area"]["left"], "0/1");
    }

    #[test]
    fn region_rects() {
        let fluid = templates_for_view(&ViewVideo::default());
        assert_eq!(region_rect(&fluid[1].regions[3], 640, 480), Rect { x: 320, y: 240, w: 320, h: 240 });
        let lecture = templates_for_view(&view(TemplateBase::Lecture, 6, vec![]));
        let rects: Vec<Rect> = lecture[1].regions.iter().map(|r| region_rect(r, 640, 480)).collect();
        assert_eq!(rects[0], Rect { x: 0, y: 0, w: 426, h: 320 });
        assert_eq!(rects[1], Rect { x: 426, y: 0, w: 214, h: 160 });
        assert_eq!(rects[3], Rect { x: 426, y: 320, w: 214, h: 160 });
        assert_eq!(rects[4], Rect { x: 212, y: 320, w: 214, h: 160 });
        assert_eq!(rects[5], Rect { x: 0, y: 320, w: 212, h: 160 });
        // Odd canvas: the last column/row stays outside; a region past the edge is clipped.
        let wide = TemplateRegion { id: "1".into(), left: f(1, 2), top: f(0, 1), width: f(1, 1), height: f(1, 1) };
        assert_eq!(region_rect(&wide, 641, 481), Rect { x: 320, y: 0, w: 320, h: 480 });
    }

    #[test]
    fn letterbox_and_crop() {
        let fluid = templates_for_view(&ViewVideo::default());
        let template = &fluid[1];
        let assignment = assign(template, &strings(&["a", "b", "c", "d"]), None);
        let sizes: HashMap<String, (u32, u32)> =
            [("a".to_string(), (640, 480)), ("b".to_string(), (480, 640)), ("d".to_string(), (1280, 720))]
                .into_iter()
                .collect();

        let placed = pixel_rects(template, &assignment, 640, 480, &sizes, FitPolicy::Letterbox);
        // "c" has no frame size yet: its region stays background.
        assert_eq!(placed.iter().map(|p| p.stream_id.as_str()).collect::<Vec<_>>(), ["a", "b", "d"]);
        assert_eq!(placed[0].dst, Rect { x: 0, y: 0, w: 320, h: 240 });
        assert_eq!(placed[1].dst, Rect { x: 320 + 70, y: 0, w: 180, h: 240 });
        assert_eq!(placed[2].dst, Rect { x: 320, y: 240 + 30, w: 320, h: 180 });
        assert_eq!(placed[2].src_crop, Rect { x: 0, y: 0, w: 1280, h: 720 });
        assert_eq!(placed[2].region_id, "4");

        let placed = pixel_rects(template, &assignment, 640, 480, &sizes, FitPolicy::Crop);
        assert_eq!(placed[2].dst, Rect { x: 320, y: 240, w: 320, h: 240 });
        assert_eq!(placed[2].src_crop, Rect { x: 160, y: 0, w: 960, h: 720 });
        assert_eq!(placed[1].src_crop, Rect { x: 0, y: 140, w: 480, h: 360 });
        assert_eq!(placed[0].src_crop, Rect { x: 0, y: 0, w: 640, h: 480 });
    }

    #[test]
    fn fit_rect_even_and_inside() {
        // 1/3 region of 640x480 (212x160 or 214x160) with a 1280x720 input.
        let region = Rect { x: 426, y: 0, w: 214, h: 160 };
        let (dst, _) = fit_rect(region, 1280, 720, FitPolicy::Letterbox).unwrap();
        assert_eq!(dst, Rect { x: 426, y: 20, w: 214, h: 120 });
        let (dst, crop) = fit_rect(region, 1279, 719, FitPolicy::Crop).unwrap();
        assert_eq!(dst, region);
        assert_eq!(crop, Rect { x: 158, y: 0, w: 960, h: 719 });
        for (w, h) in [(1, 1), (3, 1000), (1000, 3), (641, 479), (176, 144)] {
            for fit in [FitPolicy::Letterbox, FitPolicy::Crop] {
                let (dst, crop) = fit_rect(region, w, h, fit).unwrap();
                assert!(dst.x % 2 == 0 && dst.y % 2 == 0 && dst.w % 2 == 0 && dst.h % 2 == 0, "{dst:?}");
                assert!(dst.w > 0 && dst.h > 0);
                assert!(dst.x >= region.x && dst.x + dst.w <= region.x + region.w);
                assert!(dst.y >= region.y && dst.y + dst.h <= region.y + region.h);
                assert!(crop.x + crop.w <= w && crop.y + crop.h <= h && crop.w > 0 && crop.h > 0);
            }
        }
        assert_eq!(fit_rect(Rect { x: 0, y: 0, w: 0, h: 10 }, 10, 10, FitPolicy::Crop), None);
        assert_eq!(fit_rect(region, 0, 10, FitPolicy::Letterbox), None);
    }

    fn rest_item(stream: Option<&str>, id: &str, area: [&str; 4]) -> Value {
        let mut item = json!({"region": {"id": id, "shape": "rectangle",
            "area": {"left": area[0], "top": area[1], "width": area[2], "height": area[3]}}});
        if let Some(stream) = stream {
            item["stream"] = json!(stream);
        }
        item
    }

    #[test]
    fn rest_layout_valid() {
        let value = json!([
            rest_item(Some("s1"), "1", ["0/2", "0", "2/4", "1"]),
            rest_item(Some("s2"), "2", ["0.5", "0", "1/2", "1"]),
            rest_item(None, "3", ["0", "0", "1/4", "1/4"]),
            rest_item(None, "4", ["0", "0", "1/4", "1/4"]),
        ]);
        let parsed = parse_rest_layout(&value).unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(parsed[0].0.as_deref(), Some("s1"));
        assert_eq!(pos(&parsed[0].1), (f(0, 2), f(0, 1), f(2, 4), f(1, 1)));
        assert_eq!(pos(&parsed[1].1), (f(1, 2), f(0, 1), f(1, 2), f(1, 1)));
        assert_eq!(parsed[3].0, None);
        let (template, assignment) = template_from_rest(&parsed);
        assert_eq!(template.regions.len(), 4);
        // Round trip to the notification form keeps the written fractions.
        let update = layout_update(&assignment, &template);
        assert_eq!(update[0]["region"]["area"]["width"], "2/4");
        assert_eq!(update[2].get("stream"), None);
        assert_eq!(parse_rest_layout(&json!([])).unwrap(), vec![]);
    }

    #[test]
    fn rest_layout_shape_rules() {
        let err = |v: Value| parse_rest_layout(&v).unwrap_err();
        assert_eq!(err(json!({"region": {}})), "layout: must be an array");
        assert_eq!(err(json!(["x"])), "layout[0]: must be an object");
        assert_eq!(err(json!([{"stream": "s"}])), "layout[0].region: is required");
        assert!(
            err(json!([{"region": {"id": "1", "shape": "rectangle", "area": {}}, "extra": 1}])).contains("\"extra\"")
        );
        let mut item = rest_item(Some("s"), "1", ["0", "0", "1", "1"]);
        item["region"]["shape"] = json!("circle");
        assert_eq!(err(json!([item])), "layout[0].region.shape: must be \"rectangle\"");
        item["region"].as_object_mut().unwrap().remove("shape");
        assert_eq!(err(json!([item])), "layout[0].region.shape: must be \"rectangle\"");
        let mut item = rest_item(Some("s"), "1", ["0", "0", "1", "1"]);
        item["region"]["id"] = json!(1);
        assert_eq!(err(json!([item])), "layout[0].region.id: must be a non-empty string");
        let mut item = rest_item(Some("s"), "1", ["0", "0", "1", "1"]);
        item["region"]["area"].as_object_mut().unwrap().remove("height");
        assert_eq!(err(json!([item])), "layout[0].region.area.height: is required");
        let mut item = rest_item(Some("s"), "1", ["0", "0", "1", "1"]);
        item["region"]["area"]["left"] = json!(0.5);
        assert_eq!(err(json!([item])), "layout[0].region.area.left: must be a string \"n/d\"");
        let mut item = rest_item(Some("s"), "1", ["0", "0", "1", "1"]);
        item["stream"] = json!(null);
        assert_eq!(err(json!([item])), "layout[0].stream: must be a non-empty string");
        item["stream"] = json!("");
        assert_eq!(err(json!([item])), "layout[0].stream: must be a non-empty string");
    }

    #[test]
    fn rest_layout_fraction_rules() {
        for bad in ["3/2", "1/0", "abc", "-1/2", "1.5", "", "1/2/3", " 1/2"] {
            let value = json!([rest_item(Some("s"), "1", ["0", "0", bad, "1"])]);
            let message = parse_rest_layout(&value).unwrap_err();
            assert!(message.starts_with("layout[0].region.area.width: must be a fraction"), "{bad}: {message}");
        }
        for good in ["0", "1", "1/1", "0/5", "0.25", "3/6", ".5"] {
            assert!(parse_rest_layout(&json!([rest_item(Some("s"), "1", ["0", "0", good, "1"])])).is_ok(), "{good}");
        }
    }

    #[test]
    fn rest_layout_empty_regions_at_tail() {
        let value = json!([
            rest_item(Some("s1"), "1", ["0", "0", "1/2", "1"]),
            rest_item(None, "2", ["1/2", "0", "1/2", "1"]),
            rest_item(Some("s3"), "3", ["0", "0", "1/4", "1/4"]),
        ]);
        assert_eq!(
            parse_rest_layout(&value).unwrap_err(),
            "layout[2]: has a stream after the empty region layout[1]; empty regions must come last"
        );
        let all_empty = json!([rest_item(None, "1", ["0", "0", "1", "1"]), rest_item(None, "2", ["0", "0", "1", "1"])]);
        assert!(parse_rest_layout(&all_empty).is_ok());
    }

    #[test]
    fn rest_layout_no_duplicates() {
        let value = json!([
            rest_item(Some("s1"), "1", ["0", "0", "1/2", "1"]),
            rest_item(Some("s1"), "2", ["1/2", "0", "1/2", "1"]),
        ]);
        assert_eq!(parse_rest_layout(&value).unwrap_err(), "layout[1].stream: stream \"s1\" appears twice");
        let value = json!([
            rest_item(Some("s1"), "1", ["0", "0", "1/2", "1"]),
            rest_item(Some("s2"), "1", ["1/2", "0", "1/2", "1"]),
        ]);
        assert_eq!(parse_rest_layout(&value).unwrap_err(), "layout[1].region.id: region \"1\" appears twice");
    }

    #[test]
    fn fraction_parse_and_display() {
        assert_eq!(Fraction::parse("2/4"), Some(f(2, 4)));
        assert_eq!(Fraction::parse("0.5"), Some(f(1, 2)));
        assert_eq!(Fraction::parse("1"), Some(f(1, 1)));
        assert_eq!(Fraction::parse("1/0"), None);
        assert_eq!(f(0, 2).to_string(), "0/2");
        assert_eq!(f(2, 3).of(640), 426);
        assert_eq!(f(1, 3).sum_of(f(1, 3), 640), 426);
        assert!(!f(3, 2).is_unit());
    }
}
