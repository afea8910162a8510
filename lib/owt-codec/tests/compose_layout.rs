//! A mixed view end to end: inputs placed by `owt_media::layout` (fluid template, letterbox or
//! crop), composed on a 1280x720 canvas with the view's bgColor, encoded to VP8, decoded, and
//! sampled region by region.

mod common;

use std::collections::HashMap;

use common::*;
use owt_codec::{Compositor, EncoderSettings, Picture, VideoDecoder, VideoEncoder};
use owt_media::layout::{assign, choose_template, pixel_rects, region_rect, templates_for_view, Placement, Rect};
use owt_proto::media::Codec;
use owt_types::room::{FitPolicy, Rgb, ViewVideo};

const W: u32 = 1280;
const H: u32 = 720;

struct Input {
    id: String,
    picture: Picture,
    colour: Rgb,
}

fn input(id: &str, w: u32, h: u32, colour: Rgb) -> Input {
    Input { id: id.to_string(), picture: Picture::solid(w, h, colour).unwrap(), colour }
}

/// The fluid template's placements for `inputs` on the canvas, and each region's rectangle.
fn layout(inputs: &[Input], fit: FitPolicy) -> (Vec<Placement>, Vec<Rect>) {
    let view = ViewVideo { max_input: 4, ..ViewVideo::default() };
    let templates = templates_for_view(&view);
    let template = choose_template(&templates, inputs.len()).unwrap().clone();
    assert_eq!(template.regions.len(), 4, "2x2 grid for {} inputs", inputs.len());
    let ids: Vec<String> = inputs.iter().map(|i| i.id.clone()).collect();
    let assignment = assign(&template, &ids, None);
    let sizes: HashMap<String, (u32, u32)> =
        inputs.iter().map(|i| (i.id.clone(), (i.picture.width(), i.picture.height()))).collect();
    let placements = pixel_rects(&template, &assignment, W, H, &sizes, fit);
    let regions = template.regions.iter().map(|r| region_rect(r, W, H)).collect();
    (placements, regions)
}

/// Composes, encodes to VP8 and decodes half a second of the same canvas, as a live view would
/// send it, and returns the last picture: libvpx's realtime rate control starts a 720p stream
/// at a coarse quantiser and refines it over about ten frames (cyclic refresh).
fn mix(inputs: &[Input], placements: &[Placement], bg: Rgb) -> Picture {
    let mut compositor = Compositor::new(W, H, bg).unwrap();
    let by_id: HashMap<&str, &Picture> = inputs.iter().map(|i| (i.id.as_str(), &i.picture)).collect();
    let list: Vec<(Rect, Rect, &Picture)> =
        placements.iter().map(|p| (p.dst, p.src_crop, by_id[p.stream_id.as_str()])).collect();
    let canvas = compositor.compose(&list).clone();
    let settings = EncoderSettings {
        codec: Codec::Vp8,
        width: W,
        height: H,
        framerate: 30,
        bitrate_kbps: 1500,
        keyframe_interval_frames: 0,
    };
    let mut encoder = VideoEncoder::new(settings).unwrap();
    let mut decoder = VideoDecoder::new(Codec::Vp8).unwrap();
    let mut last = None;
    for i in 0..15 {
        let frame = encoder.encode(&canvas, i * 3000, false).unwrap().remove(0);
        assert_eq!(frame.keyframe, i == 0);
        last = decoder.decode(&frame).unwrap();
    }
    last.unwrap()
}

/// Mean colour of a 32x32 square centred at (x, y).
fn sample(p: &Picture, x: u32, y: u32) -> (u8, u8, u8) {
    p.mean_rgb(Rect { x: x - 16, y: y - 16, w: 32, h: 32 })
}

fn centre(r: Rect) -> (u32, u32) {
    (r.x + r.w / 2, r.y + r.h / 2)
}

#[test]
fn four_inputs_in_a_grid() {
    // Different sizes, all 16:9 so letterbox fills the regions.
    let inputs = [
        input("a", 640, 360, RED),
        input("b", 1280, 720, GREEN),
        input("c", 320, 180, BLUE),
        input("d", 960, 540, YELLOW),
    ];
    let (placements, regions) = layout(&inputs, FitPolicy::Letterbox);
    assert_eq!(placements.len(), 4);
    let out = mix(&inputs, &placements, BG);
    for (input, region) in inputs.iter().zip(&regions) {
        let (x, y) = centre(*region);
        let got = sample(&out, x, y);
        assert!(near(got, input.colour, 12), "region of {} at {region:?} is {got:?}", input.id);
    }
}

#[test]
fn empty_region_shows_the_background() {
    let inputs = [input("a", 640, 360, RED), input("b", 640, 360, GREEN), input("c", 640, 360, BLUE)];
    let (placements, regions) = layout(&inputs, FitPolicy::Letterbox);
    assert_eq!(placements.len(), 3);
    let out = mix(&inputs, &placements, BG);
    for (input, region) in inputs.iter().zip(&regions) {
        let (x, y) = centre(*region);
        assert!(near(sample(&out, x, y), input.colour, 12), "region of {}", input.id);
    }
    let (x, y) = centre(regions[3]);
    let got = sample(&out, x, y);
    assert!(near(got, BG, 12), "empty region is {got:?}, bgColor {BG:?}");
}

/// 4:3 inputs in 16:9 regions: letterbox leaves bgColor bars left and right and shows the whole
/// input (its white top stripe included); crop fills the region and cuts the stripe off.
#[test]
fn letterbox_and_crop_differ() {
    let striped = |id: &str, colour: Rgb| {
        let mut i = input(id, 640, 480, colour);
        i.picture.fill_rect_rgb(Rect { x: 0, y: 0, w: 640, h: 40 }, WHITE);
        i
    };
    let inputs = [striped("a", RED), striped("b", GREEN), striped("c", BLUE), striped("d", YELLOW)];

    let (placements, regions) = layout(&inputs, FitPolicy::Letterbox);
    let out = mix(&inputs, &placements, BG);
    for ((input, region), placement) in inputs.iter().zip(&regions).zip(&placements) {
        // 640x480 into 640x360: 480x360 centred, 80 px bars.
        assert_eq!((placement.dst.w, placement.dst.h), (480, 360));
        let (x, y) = centre(*region);
        assert!(near(sample(&out, x, y), input.colour, 12), "letterbox centre of {}", input.id);
        let bar = sample(&out, region.x + 40, y);
        assert!(near(bar, BG, 12), "letterbox bar of {} is {bar:?}", input.id);
        // The stripe: top 40 of 480 rows, so 30 of 360 rows in the region.
        let stripe = out.mean_rgb(Rect { x: x - 16, y: region.y + 8, w: 32, h: 14 });
        assert!(near(stripe, WHITE, 16), "letterbox keeps the stripe of {}: {stripe:?}", input.id);
    }

    let (placements, regions) = layout(&inputs, FitPolicy::Crop);
    let out = mix(&inputs, &placements, BG);
    for ((input, region), placement) in inputs.iter().zip(&regions).zip(&placements) {
        assert_eq!(placement.dst, *region, "crop fills the region");
        let (x, y) = centre(*region);
        assert!(near(sample(&out, x, y), input.colour, 12), "crop centre of {}", input.id);
        let edge = sample(&out, region.x + 40, y);
        assert!(near(edge, input.colour, 12), "crop has no bar: {} is {edge:?}", input.id);
        let top = out.mean_rgb(Rect { x: x - 16, y: region.y + 8, w: 32, h: 14 });
        assert!(near(top, input.colour, 12), "crop cuts the stripe of {}: {top:?}", input.id);
    }
}

/// A steady layout composes without new scaling contexts, one per distinct scaling.
#[test]
fn scalers_are_reused() {
    let inputs = [input("a", 640, 480, RED), input("b", 640, 480, GREEN), input("c", 320, 240, BLUE)];
    let (placements, _) = layout(&inputs, FitPolicy::Letterbox);
    let pictures: Vec<&Picture> = inputs.iter().map(|i| &i.picture).collect();
    let list: Vec<(Rect, Rect, &Picture)> =
        placements.iter().zip(&pictures).map(|(p, pic)| (p.dst, p.src_crop, *pic)).collect();
    let mut compositor = Compositor::new(W, H, BG).unwrap();
    for _ in 0..10 {
        compositor.compose(&list);
    }
    // a and b share 640x480 -> 480x360; c is 320x240 -> 480x360.
    assert_eq!(compositor.cached_scalers(), 2);
}
