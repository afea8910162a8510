#!/usr/bin/python3
"""H.265 through owt-webrtc with two GStreamer webrtcbin peers (a non-browser WebRTC client:
headless Chromium has no H.265 encoder).

A publisher encodes videotestsrc 320x240 with x265enc and publishes it through owt-portal's
OWT 1.2 signaling (login, publish with media.tracks, soac offer and candidates, progress
answer and ready); a subscriber then subscribes that forward stream on a recvonly H.265
transceiver and decodes it with avdec_h265, counting decoded frames and their size.

The Socket.IO side is tests/js/owt-client.js (npm socket.io-client 4 on node), one process
per client, spoken to in JSON lines over its stdin/stdout.

Usage: h265_forward.py PORTAL_URL PUBLISHER_TOKEN SUBSCRIBER_TOKEN [FRAMES] [SECONDS]
Prints progress on stderr and one JSON result line on stdout; exits 0 once the subscriber
has decoded FRAMES frames, 1 on error or when SECONDS pass first.
Run it with Debian's /usr/bin/python3 (python3-gi), inside `unshare -n` with loopback up.
"""
import json
import os
import subprocess
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

OWT_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "js", "owt-client.js")
USER_AGENT = {"sdk": {"version": "5.1", "type": "JavaScript"}}
H265_RTP_CAPS = "application/x-rtp,media=video,encoding-name=H265,clock-rate=90000,payload=126"


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


class Signaling:
    """One Socket.IO connection to the portal through owt-client.js; callbacks run on the
    GLib main loop."""

    def __init__(self, name, url, on_event):
        self.name = name
        self.on_event = on_event
        self.acks = {}
        self.next_id = 1
        self.proc = subprocess.Popen(
            ["node", OWT_CLIENT, "4", url, "websocket"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.strip():
                GLib.idle_add(self._dispatch, json.loads(line))
        GLib.idle_add(self._dispatch, {"event": "exited"})

    def _dispatch(self, message):
        if "ack" in message:
            callback = self.acks.pop(message["ack"], None)
            if callback:
                callback(message["args"])
        else:
            self.on_event(message["event"], message.get("args", []))
        return False

    def request(self, event, data, callback):
        """Emits `event` with `data`; `callback(data)` on an "ok" ack, a failure otherwise."""
        ident = self.next_id
        self.next_id += 1

        def acked(args):
            if args and args[0] == "ok":
                callback(args[1] if len(args) > 1 else None)
            else:
                fail(f"{self.name}: {event} refused: {args}")

        self.acks[ident] = acked
        self.proc.stdin.write(json.dumps({"op": "emit", "event": event, "data": data, "id": ident}) + "\n")
        self.proc.stdin.flush()

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Client:
    """A webrtcbin peer that publishes or subscribes through the portal: offer first, then the
    publish/subscribe request naming the offer's mids, then soac offer, answer, candidates."""

    def __init__(self, name, url, token, pipeline_description, on_logged_in):
        self.name = name
        self.pipe = Gst.parse_launch(pipeline_description)
        if not isinstance(self.pipe, Gst.Pipeline):  # a lone element comes back unwrapped
            element, self.pipe = self.pipe, Gst.Pipeline.new(name)
            self.pipe.add(element)
        self.webrtc = self.pipe.get_by_name("webrtc")
        # libnice skips loopback interfaces; keep the agent referenced while the pipeline runs.
        self.ice = self.webrtc.get_property("ice-agent")
        self.ice.emit("add-local-ip-address", "127.0.0.1")
        self.ice.set_property("ice-tcp", False)
        self.transport_id = None
        self.session_id = None
        self.pending_candidates = []
        self.answered = False
        self.mids = []
        self.on_answer_sdp = None
        self.on_ready = None
        self.webrtc.connect("on-ice-candidate", self._on_candidate)
        self.signaling = Signaling(name, url, self._on_event)
        self.token = token
        self.on_logged_in = on_logged_in

    def _on_event(self, event, args):
        if event == "connect":
            self.signaling.request(
                "login", {"token": self.token, "userAgent": USER_AGENT, "protocol": "1.2"}, self.on_logged_in
            )
        elif event in ("connect_error", "disconnect", "exited"):
            fail(f"{self.name}: signaling {event} {args}")
        elif event == "progress":
            self._on_progress(args[0])
        elif event == "stream" and self.name == "subscriber":
            record_resolution(args[0])

    def _on_progress(self, progress):
        status, data = progress.get("status"), progress.get("data")
        if status == "soac" and data.get("type") == "answer":
            log(self.name, "answer:", [l for l in data["sdp"].split("\r\n") if l.startswith(("m=", "a=rtpmap"))])
            if self.on_answer_sdp:
                self.on_answer_sdp(data["sdp"])
            _, message = GstSdp.SDPMessage.new_from_text(data["sdp"])
            answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
            self.webrtc.emit("set-remote-description", answer, Gst.Promise.new())
            self.answered = True
            for candidate in self.pending_candidates:
                self._send_candidate(*candidate)
            self.pending_candidates.clear()
        elif status == "ready" and progress.get("sessionId") == self.session_id and self.on_ready:
            log(self.name, "session ready", self.session_id)
            self.on_ready()
        elif status == "error":
            result.setdefault("progressError", {"client": self.name, "reason": data})
            fail(f"{self.name}: progress error {progress}")

    def _on_candidate(self, _, mline, candidate):
        # Candidates go out once the answer is in (as the JS SDK does): the transport id is
        # known by then and the server has the m-lines.
        if self.answered:
            self._send_candidate(mline, candidate)
        else:
            self.pending_candidates.append((mline, candidate))

    def _send_candidate(self, mline, candidate):
        body = {"candidate": "a=" + candidate, "sdpMid": self.mids[mline], "sdpMLineIndex": mline}
        self.signaling.request(
            "soac", {"id": self.transport_id, "signaling": {"type": "candidate", "candidate": body}}, lambda _: None
        )

    def negotiate(self, request_name, describe_tracks):
        """Offers, then sends `request_name` (publish/subscribe) with the tracks
        `describe_tracks(mids)` gives, then the offer through soac."""

        def on_offer(promise, _):
            reply = promise.get_reply()  # keep the reply alive while its value is used (else: crash)
            offer = reply.get_value("offer")
            self.webrtc.emit("set-local-description", offer, Gst.Promise.new())
            sdp = offer.sdp.as_text()
            GLib.idle_add(self._request_with_offer, request_name, describe_tracks, sdp)

        self.webrtc.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, None))

    def _request_with_offer(self, request_name, describe_tracks, sdp):
        self.mids = [l[len("a=mid:"):].strip() for l in sdp.split("\r\n") if l.startswith("a=mid:")]
        log(self.name, "offer:", [l for l in sdp.split("\r\n") if l.startswith(("m=", "a=rtpmap", "a=mid"))])
        body = {"media": {"tracks": describe_tracks(self.mids)}, "transport": {"type": "webrtc"}}

        def acked(result):
            self.transport_id, self.session_id = result["transportId"], result["id"]
            log(self.name, request_name, "ok", result)
            self.signaling.request(
                "soac", {"id": self.transport_id, "signaling": {"type": "offer", "sdp": sdp}}, lambda _: None
            )

        self.signaling.request(request_name, body, acked)
        return False

    def stop(self):
        self.pipe.set_state(Gst.State.NULL)
        self.signaling.close()


result = {}
loop = None


def fail(reason):
    result.setdefault("error", reason)
    log("FAIL", reason)
    if loop:
        loop.quit()


def record_resolution(message):
    """Keeps the video resolution of a `stream` update (the whole StreamInfo, field "."), as the
    portal sends once owt-webrtc measured the published track's size from its SPS."""
    data = message.get("data") or {}
    if message.get("status") == "update" and data.get("field") == ".":
        record_stream_resolution(data.get("value") or {})


def record_stream_resolution(stream):
    """Keeps the video resolution of a StreamInfo (login's room streams or an update)."""
    for track in stream.get("media", {}).get("tracks", []):
        resolution = (track.get("parameters") or {}).get("resolution")
        if track.get("type") == "video" and resolution:
            result.setdefault("resolutions", []).append(resolution)
            maybe_done()


def maybe_done():
    """Done once enough frames are decoded and the track's resolution was announced."""
    if result["decoded"]["frames"] >= result["wantedFrames"] and result.get("resolutions"):
        GLib.idle_add(loop.quit)


def main():
    global loop
    url, publisher_token, subscriber_token = sys.argv[1:4]
    wanted_frames = int(sys.argv[4]) if len(sys.argv) > 4 else 60
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 30
    Gst.init(None)
    loop = GLib.MainLoop()
    decoded = {"frames": 0, "sizes": {}}
    result["decoded"] = decoded
    result["wantedFrames"] = wanted_frames

    publisher = Client(
        "publisher",
        url,
        publisher_token,
        "webrtcbin name=webrtc bundle-policy=max-bundle "
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! "
        # Closed GOPs with VPS/SPS/PPS before every IDR, as WebRTC H.265 encoders send them: by
        # default x265 writes the parameter sets once and then makes CRA keyframes, which
        # rtph265pay does not precede with them, so a subscriber that joins later (through an
        # SFU, which forwards packets as they are) could never start decoding.
        "videoconvert ! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=400 "
        "option-string=open-gop=0:repeat-headers=1 ! "
        "video/x-h265,stream-format=byte-stream ! rtph265pay config-interval=-1 ! "
        f"{H265_RTP_CAPS} ! webrtc.",
        lambda info: publisher.negotiate(
            "publish", lambda mids: [{"type": "video", "mid": mids[0], "source": "camera"}]
        ),
    )
    subscriber_holder = {}

    def on_decoded(sink, buffer, pad):
        caps = pad.get_current_caps()
        structure = caps.get_structure(0) if caps else None
        if structure:
            size = f"{structure.get_value('width')}x{structure.get_value('height')}"
            decoded["sizes"][size] = decoded["sizes"].get(size, 0) + 1
        decoded["frames"] += 1
        maybe_done()

    def on_incoming(webrtc, pad):
        if pad.direction != Gst.PadDirection.SRC:
            return
        caps = pad.get_current_caps()
        log("subscriber: incoming", caps.to_string() if caps else None)
        result["incomingCaps"] = caps.to_string() if caps else None
        pipe = subscriber_holder["client"].pipe
        chain = Gst.parse_bin_from_description(
            "rtph265depay ! h265parse ! avdec_h265 ! fakesink name=decoded sync=false signal-handoffs=true", True
        )
        sink = chain.get_by_name("decoded")
        sink.connect("handoff", on_decoded)
        pipe.add(chain)
        chain.sync_state_with_parent()
        pad.link(chain.get_static_pad("sink"))

    def start_subscriber(publication_id):
        def logged_in(info):
            streams = {s["id"]: s for s in info["room"]["streams"]}
            stream = streams.get(publication_id)
            if not stream:
                fail(f"publication {publication_id} not in the room's streams: {list(streams)}")
                return
            result["publication"] = stream
            record_stream_resolution(stream)
            subscriber.webrtc.connect("pad-added", on_incoming)
            subscriber.webrtc.emit(
                "add-transceiver",
                GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                Gst.Caps.from_string(H265_RTP_CAPS),
            )
            subscriber.negotiate(
                "subscribe", lambda mids: [{"type": "video", "mid": mids[0], "from": publication_id}]
            )

        subscriber = Client("subscriber", url, subscriber_token, "webrtcbin name=webrtc bundle-policy=max-bundle",
                            logged_in)
        subscriber.on_answer_sdp = lambda sdp: result.__setitem__("subscriberAnswer", sdp_codecs(sdp))
        subscriber_holder["client"] = subscriber
        subscriber.pipe.set_state(Gst.State.PLAYING)

    publisher.on_answer_sdp = lambda sdp: result.__setitem__("publisherAnswer", sdp_codecs(sdp))
    publisher.on_ready = lambda: start_subscriber(publisher.session_id)
    publisher.pipe.set_state(Gst.State.PLAYING)

    def timed_out():
        fail(f"{seconds} s passed with {decoded['frames']} frames decoded, "
             f"resolutions announced: {result.get('resolutions', [])}")
        return False

    GLib.timeout_add(int(seconds * 1000), timed_out)
    loop.run()
    for client in (subscriber_holder.get("client"), publisher):
        if client:
            client.stop()
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


def sdp_codecs(sdp):
    """The rtpmap encodings of each m-line of `sdp`: [["video", ["H265/90000", ...]], ...]."""
    sections = []
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            sections.append([line[2:].split(" ")[0], []])
        elif line.startswith("a=rtpmap:") and sections:
            sections[-1][1].append(line.split(" ", 1)[1])
    return sections


if __name__ == "__main__":
    sys.exit(main())
