//! Tables for people, JSON for scripts.

use crate::Global;
use serde_json::{json, Value};

fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub fn done(global: &Global, message: &str) {
    if global.json {
        println!("{}", json!({"ok": true, "message": message}));
    } else {
        println!("{message}");
    }
}

pub fn services(global: &Global, list: &Value) {
    if global.json {
        println!("{list}");
        return;
    }
    let rows = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let rooms = s["rooms"].as_array().map_or(0, Vec::len);
            vec![text(&s["_id"]), text(&s["name"]), rooms.to_string()]
        })
        .collect();
    table(&["ID", "NAME", "ROOMS"], rows);
}

pub fn service(global: &Global, service: &Value) {
    if global.json {
        println!("{service}");
        return;
    }
    println!("id:    {}", text(&service["_id"]));
    println!("name:  {}", text(&service["name"]));
    println!("key:   {}", text(&service["key"]));
    println!("rooms: {}", service["rooms"].as_array().map_or(0, Vec::len));
}

pub fn rooms(global: &Global, list: &Value) {
    if global.json {
        println!("{list}");
        return;
    }
    let rows = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let views: Vec<String> = r["views"].as_array().into_iter().flatten().map(|v| text(&v["label"])).collect();
            vec![
                text(&r["_id"]),
                text(&r["name"]),
                if views.is_empty() { "-".into() } else { views.join(",") },
                text(&r["inputLimit"]),
                text(&r["participantLimit"]),
            ]
        })
        .collect();
    table(&["ID", "NAME", "VIEWS", "INPUT LIMIT", "PARTICIPANT LIMIT"], rows);
}

pub fn room(global: &Global, room: &Value) {
    if global.json {
        println!("{room}");
    } else {
        println!("{}", serde_json::to_string_pretty(room).unwrap_or_default());
    }
}

pub fn workers(global: &Global, list: &Value) {
    if global.json {
        println!("{list}");
        return;
    }
    let rows = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            vec![
                text(&w["kind"]),
                text(&w["node_id"]),
                format!("{:.2}", w["load"].as_f64().unwrap_or(0.0)),
                format!("{}s", w["age_s"].as_u64().unwrap_or(0)),
                text(&w["tasks"]),
                format!("{}:{}", text(&w["hostname"]), text(&w["pid"])),
                if w["media_endpoint"].as_str().unwrap_or("").is_empty() {
                    "-".into()
                } else {
                    text(&w["media_endpoint"])
                },
            ]
        })
        .collect();
    table(&["KIND", "NODE", "LOAD", "AGE", "TASKS", "HOST:PID", "MEDIA ENDPOINT"], rows);
}

pub fn participants(global: &Global, list: &Value) {
    if global.json {
        println!("{list}");
        return;
    }
    let flags = |p: &Value| {
        let yes = |v: &Value| if v.as_bool() == Some(true) { "y" } else { "-" };
        format!("{}{}", yes(&p["audio"]), yes(&p["video"]))
    };
    let rows = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                text(&p["id"]),
                text(&p["user"]),
                text(&p["role"]),
                flags(&p["permission"]["publish"]),
                flags(&p["permission"]["subscribe"]),
            ]
        })
        .collect();
    table(&["ID", "USER", "ROLE", "PUBLISH(AV)", "SUBSCRIBE(AV)"], rows);
}

pub fn streams(global: &Global, list: &Value) {
    if global.json {
        println!("{list}");
        return;
    }
    let rows = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let video = &s["media"]["video"];
            let resolution = &video["parameters"]["resolution"];
            vec![
                text(&s["id"]),
                text(&s["type"]),
                text(&s["media"]["audio"]["format"]["codec"]),
                text(&video["format"]["codec"]),
                if resolution.is_object() {
                    format!("{}x{}", resolution["width"], resolution["height"])
                } else {
                    "-".into()
                },
                text(s["info"].get("owner").or(s["info"].get("label")).unwrap_or(&Value::Null)),
            ]
        })
        .collect();
    table(&["ID", "TYPE", "AUDIO", "VIDEO", "RESOLUTION", "OWNER/VIEW"], rows);
}

pub fn stats(global: &Global, stats: &Value) {
    if global.json {
        println!("{stats}");
        return;
    }
    let rows = stats["tracks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            vec![
                text(&t["trackId"]),
                text(&t["kind"]),
                text(&t["packets"]),
                text(&t["bytes"]),
                format!("{:.0}", t["bitrateKbps"].as_f64().unwrap_or(0.0)),
                text(&t["packetsLost"]),
                text(&t["nacks"]),
                text(&t["retransmitted"]),
                text(&t["plis"]),
                t["rttMs"].as_f64().map_or("-".into(), |r| format!("{r:.1}")),
            ]
        })
        .collect();
    table(&["TRACK", "KIND", "PACKETS", "BYTES", "KBPS", "LOST", "NACKS", "RESENT", "PLIS", "RTT MS"], rows);
}
