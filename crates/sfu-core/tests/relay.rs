//! Relay links between two engines (a cluster's nodes): a track published on one engine reaches
//! a subscriber of the other, keyframe requests travel back to the publisher, the relayed track
//! keeps its publisher's partition, and a link keyed differently carries nothing.

use sfu_core::engine::{RelayedLayer, RelayedTrack, RELAY_KEYING_MATERIAL_LEN};
use sfu_core::{MediaKind, PeerId, SfuError, TrackId};
use sfu_testkit::*;
use std::net::SocketAddr;
use std::time::Duration;

const FRAME_TICKS: u32 = 3000;
const FRAME_INTERVAL: Duration = Duration::from_millis(30);
const OTHER_ENGINE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    40001,
);

struct Cluster {
    /// Alice publishes audio and video here.
    origin: SimNetwork,
    /// Bob receives here.
    edge: SimNetwork,
    alice: usize,
    alice_peer: PeerId,
    bob: (usize, PeerId),
    video: TrackId,
    audio: TrackId,
    origin_link: PeerId,
    edge_link: PeerId,
    next_sequence: u16,
}

fn keys(fill: u8) -> Vec<u8> {
    (0..RELAY_KEYING_MATERIAL_LEN)
        .map(|i| fill.wrapping_add(i as u8))
        .collect()
}

fn cluster(edge_keys: Vec<u8>) -> Cluster {
    let mut origin = SimNetwork::new(1);
    let mut edge = SimNetwork::at(2, OTHER_ENGINE, origin.now);
    let (alice, alice_peer) = origin.join("alice", 5000, SimPeer::publisher_offer);
    let video = origin.published(MediaKind::Video).unwrap();
    let audio = origin.published(MediaKind::Audio).unwrap();
    let bob = edge.join("bob", 5001, |p| p.subscriber_offer(1, 1));
    let origin_link = origin
        .engine
        .create_relay_peer(OTHER_ENGINE, &keys(7), true, origin.now)
        .unwrap();
    let edge_link = edge
        .engine
        .create_relay_peer(SERVER, &edge_keys, false, edge.now)
        .unwrap();
    Cluster {
        origin,
        edge,
        alice,
        alice_peer,
        bob,
        video,
        audio,
        origin_link,
        edge_link,
        next_sequence: 1000,
    }
}

/// Exports Alice's `track` from the origin and subscribes Bob to it at the edge.
fn relay(cluster: &mut Cluster, track: TrackId, partition: u32) -> (RelayedTrack, TrackId) {
    let relayed = cluster
        .origin
        .engine
        .relay_export(cluster.origin_link, track, cluster.origin.now)
        .unwrap();
    let imported = cluster
        .edge
        .engine
        .relay_import(cluster.edge_link, &relayed, "alice", partition)
        .unwrap();
    cluster
        .edge
        .engine
        .subscribe(cluster.bob.1, imported, cluster.edge.now)
        .unwrap();
    SimNetwork::exchange(&mut cluster.origin, &mut cluster.edge);
    (relayed, imported)
}

fn send_frame(cluster: &mut Cluster, keyframe: bool) {
    SimNetwork::advance_both(&mut cluster.origin, &mut cluster.edge, FRAME_INTERVAL);
    let sequence = cluster.next_sequence;
    cluster.next_sequence = sequence.wrapping_add(1);
    let alice = &mut cluster.origin.peers[cluster.alice];
    alice.send_rtp(
        VP8_PT,
        VIDEO_SSRC,
        sequence,
        u32::from(sequence) * FRAME_TICKS,
        true,
        &vp8_payload(keyframe, sequence as u8, 900),
    );
    alice.send_rtp(
        OPUS_PT,
        AUDIO_SSRC,
        sequence,
        u32::from(sequence) * 960,
        false,
        &[0xfc, sequence as u8, 1, 2, 3],
    );
    SimNetwork::exchange(&mut cluster.origin, &mut cluster.edge);
}

fn received(cluster: &Cluster, payload_type: u8) -> Vec<ReceivedRtp> {
    cluster.edge.peers[cluster.bob.0]
        .received_rtp
        .iter()
        .filter(|p| p.payload_type == payload_type)
        .cloned()
        .collect()
}

#[test]
fn a_track_published_on_one_engine_plays_on_the_other() {
    let mut cluster = cluster(keys(7));
    let (video, audio) = (cluster.video, cluster.audio);
    relay(&mut cluster, video, 0);
    relay(&mut cluster, audio, 0);
    // Bob's subscription asked the edge for a keyframe; the edge asked the origin over the link,
    // and the origin asked Alice.
    assert!(cluster.origin.peers[cluster.alice].plis_received(VIDEO_SSRC) >= 1);

    send_frame(&mut cluster, true);
    for _ in 0..9 {
        send_frame(&mut cluster, false);
    }
    let video = received(&cluster, VP8_PT);
    let audio = received(&cluster, OPUS_PT);
    assert_eq!(video.len(), 10, "every video packet reaches Bob");
    assert_eq!(audio.len(), 10, "every audio packet reaches Bob");
    assert_eq!(
        video[0].payload,
        vp8_payload(true, 1000u16 as u8, 900),
        "the payload arrives unchanged, starting at the keyframe"
    );
    for pair in video.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
        assert_eq!(
            pair[1].timestamp.wrapping_sub(pair[0].timestamp),
            FRAME_TICKS
        );
    }
    let announced = cluster.edge.peers[cluster.bob.0].announced_ssrc("v0");
    assert_eq!(
        Some(video[0].ssrc),
        announced,
        "Bob gets it on his own m-line"
    );
}

#[test]
fn ending_the_import_frees_the_subscribers_slot_and_the_export_slot_is_reused() {
    let mut cluster = cluster(keys(7));
    let video = cluster.video;
    let (first, imported) = relay(&mut cluster, video, 0);
    send_frame(&mut cluster, true);
    assert_eq!(received(&cluster, VP8_PT).len(), 1);

    cluster
        .edge
        .engine
        .relay_end_import(cluster.edge_link, imported)
        .unwrap();
    cluster
        .origin
        .engine
        .relay_unexport(cluster.origin_link, video)
        .unwrap();
    send_frame(&mut cluster, false);
    assert_eq!(received(&cluster, VP8_PT).len(), 1, "nothing after the end");
    assert_eq!(
        cluster.edge.engine.unsubscribe(cluster.bob.1, imported),
        Err(SfuError::NotSubscribed {
            peer: cluster.bob.1,
            track: imported
        })
    );

    let (second, _) = relay(&mut cluster, video, 0);
    assert_eq!(
        second.layers, first.layers,
        "the link's free slot carries it again"
    );
    send_frame(&mut cluster, true);
    assert_eq!(
        received(&cluster, VP8_PT).len(),
        2,
        "Bob's free m-line took it"
    );
}

#[test]
fn a_relayed_track_stays_in_its_publishers_partition() {
    let mut cluster = cluster(keys(7));
    let video = cluster.video;
    let (_, imported) = relay(&mut cluster, video, 0);
    send_frame(&mut cluster, true);
    assert_eq!(received(&cluster, VP8_PT).len(), 1);

    // Alice went to breakout 1 on the origin; the link still carries her track.
    let now = cluster.origin.now;
    cluster
        .origin
        .engine
        .set_partition(cluster.alice_peer, 1, now)
        .unwrap();
    cluster
        .edge
        .engine
        .set_track_partition(imported, 1, cluster.edge.now)
        .unwrap();
    send_frame(&mut cluster, false);
    send_frame(&mut cluster, false);
    assert_eq!(
        received(&cluster, VP8_PT).len(),
        1,
        "Bob in the main room gets nothing"
    );

    cluster
        .edge
        .engine
        .set_partition(cluster.bob.1, 1, cluster.edge.now)
        .unwrap();
    let plis = cluster.origin.peers[cluster.alice].plis_received(VIDEO_SSRC);
    SimNetwork::advance_both(
        &mut cluster.origin,
        &mut cluster.edge,
        Duration::from_millis(500),
    );
    assert!(
        cluster.origin.peers[cluster.alice].plis_received(VIDEO_SSRC) > plis,
        "joining her partition asks for a keyframe across the link"
    );
    send_frame(&mut cluster, false);
    assert_eq!(
        received(&cluster, VP8_PT).len(),
        1,
        "a delta frame is not a start"
    );
    send_frame(&mut cluster, true);
    assert_eq!(
        received(&cluster, VP8_PT).len(),
        2,
        "Bob joined her breakout"
    );
}

#[test]
fn a_link_keyed_differently_carries_nothing() {
    let mut cluster = cluster(keys(8));
    let (video, imported_before) = (cluster.video, cluster.edge.engine.stats().tracks);
    relay(&mut cluster, video, 0);
    send_frame(&mut cluster, true);
    send_frame(&mut cluster, false);
    assert!(received(&cluster, VP8_PT).is_empty());
    assert!(cluster.edge.engine.stats().dropped_srtp_auth >= 2);
    assert_eq!(cluster.edge.engine.stats().tracks, imported_before + 1);
}

#[test]
fn bad_relay_arguments_are_refused() {
    let mut cluster = cluster(keys(7));
    let now = cluster.origin.now;
    let engine = &mut cluster.origin.engine;
    assert!(matches!(
        engine.create_relay_peer(OTHER_ENGINE, &keys(1)[..10], true, now),
        Err(SfuError::InvalidArgument(_))
    ));
    assert!(
        matches!(
            engine.create_relay_peer(OTHER_ENGINE, &keys(1), true, now),
            Err(SfuError::InvalidArgument(_)),
        ),
        "one link per address"
    );
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 4000));
    assert!(matches!(
        engine.create_relay_peer(unspecified, &keys(1), true, now),
        Err(SfuError::InvalidArgument(_))
    ));
    let (video, link) = (cluster.video, cluster.origin_link);
    let alice = cluster.alice_peer;
    let engine = &mut cluster.origin.engine;
    assert!(
        matches!(
            engine.relay_export(alice, video, now),
            Err(SfuError::InvalidArgument(_))
        ),
        "only a relay link exports"
    );
    engine.relay_export(link, video, now).unwrap();
    assert!(matches!(
        engine.relay_export(link, video, now),
        Err(SfuError::AlreadySubscribed { .. })
    ));
    assert!(matches!(
        engine.apply_offer(link, &SimPeer::new("x", 6000).publisher_offer(), now),
        Err(SfuError::InvalidState { .. })
    ));
    let empty = RelayedTrack {
        kind: MediaKind::Video,
        layers: vec![RelayedLayer {
            ssrc: 5,
            rtx_ssrc: None,
        }],
        payload_types: Vec::new(),
    };
    assert!(matches!(
        cluster
            .edge
            .engine
            .relay_import(cluster.edge_link, &empty, "x", 0),
        Err(SfuError::InvalidArgument(_))
    ));
    let no_layers = RelayedTrack {
        layers: Vec::new(),
        ..audio_export(&mut cluster)
    };
    assert!(matches!(
        cluster
            .edge
            .engine
            .relay_import(cluster.edge_link, &no_layers, "x", 0),
        Err(SfuError::InvalidArgument(_))
    ));
    let exported = audio_export(&mut cluster);
    let same_ssrc_twice = RelayedTrack {
        layers: vec![exported.layers[0], exported.layers[0]],
        ..exported
    };
    assert!(matches!(
        cluster
            .edge
            .engine
            .relay_import(cluster.edge_link, &same_ssrc_twice, "x", 0),
        Err(SfuError::InvalidArgument(_))
    ));
}

#[test]
fn a_relayed_track_is_not_sent_on_to_a_third_engine() {
    let mut cluster = cluster(keys(7));
    let video = cluster.video;
    let (_, imported) = relay(&mut cluster, video, 0);
    let third = SocketAddr::from(([127, 0, 0, 1], 40002));
    let now = cluster.edge.now;
    let onward = cluster
        .edge
        .engine
        .create_relay_peer(third, &keys(3), true, now)
        .unwrap();
    assert!(matches!(
        cluster.edge.engine.relay_export(onward, imported, now),
        Err(SfuError::InvalidArgument(_))
    ));
}

#[test]
fn a_link_outlives_the_ice_consent_timeout() {
    let mut cluster = cluster(keys(7));
    let video = cluster.video;
    relay(&mut cluster, video, 0);
    // No STUN ever crosses a link; a browser peer this quiet would be disconnected at 30 s.
    // Alice and Bob keep their consent fresh as browsers do.
    for _ in 0..31 {
        SimNetwork::advance_both(
            &mut cluster.origin,
            &mut cluster.edge,
            Duration::from_secs(1),
        );
        cluster.origin.peers[cluster.alice].send_connectivity_check(false);
        cluster.edge.peers[cluster.bob.0].send_connectivity_check(false);
    }
    send_frame(&mut cluster, true);
    assert!(
        cluster
            .edge
            .engine
            .peer_stats(cluster.edge_link)
            .unwrap()
            .connected
    );
    assert_eq!(received(&cluster, VP8_PT).len(), 1);
}

/// What the origin sends for Alice's audio track on the link, exported anew.
fn audio_export(cluster: &mut Cluster) -> RelayedTrack {
    let (audio, link, now) = (cluster.audio, cluster.origin_link, cluster.origin.now);
    match cluster.origin.engine.relay_export(link, audio, now) {
        Ok(relayed) => relayed,
        Err(_) => {
            cluster.origin.engine.relay_unexport(link, audio).unwrap();
            cluster
                .origin
                .engine
                .relay_export(link, audio, now)
                .unwrap()
        }
    }
}

const MID_EXT: u8 = 4;
const RID_EXT: u8 = 10;
const SIMULCAST: [(&str, u32, (u16, u16)); 3] = [
    ("q", 0xa1, (320, 180)),
    ("h", 0xa2, (640, 360)),
    ("f", 0xa3, (1280, 720)),
];

/// Which layer a forwarded payload came from: each layer's payloads have their own length.
fn layer_of(payload: &[u8]) -> usize {
    (payload.len() - 200) / 10
}

/// Alice publishes three-layer simulcast on the origin; the edge imports her track over a link.
struct SimulcastCluster {
    origin: SimNetwork,
    edge: SimNetwork,
    alice: usize,
    track: TrackId,
    origin_link: PeerId,
    edge_link: PeerId,
    relayed: RelayedTrack,
    imported: TrackId,
}

fn simulcast_cluster(seed: u64) -> SimulcastCluster {
    let mut origin = SimNetwork::new(seed);
    let mut edge = SimNetwork::at(seed + 1, OTHER_ENGINE, origin.now);
    let (alice, _, track) = origin.join_simulcast_publisher("alice", 5000, |offer| offer);
    let origin_link = origin
        .engine
        .create_relay_peer(OTHER_ENGINE, &keys(7), true, origin.now)
        .unwrap();
    let edge_link = edge
        .engine
        .create_relay_peer(SERVER, &keys(7), false, edge.now)
        .unwrap();
    let relayed = origin
        .engine
        .relay_export(origin_link, track, origin.now)
        .unwrap();
    let imported = edge
        .engine
        .relay_import(edge_link, &relayed, "alice", 0)
        .unwrap();
    SimulcastCluster {
        origin,
        edge,
        alice,
        track,
        origin_link,
        edge_link,
        relayed,
        imported,
    }
}

#[test]
fn each_simulcast_layer_crosses_and_the_importing_engine_chooses_per_subscriber() {
    let SimulcastCluster {
        mut origin,
        mut edge,
        alice,
        track,
        origin_link,
        relayed,
        imported,
        ..
    } = simulcast_cluster(5);
    assert_eq!(relayed.layers.len(), 3, "one stream per layer");
    let small = edge.join("small", 5001, |p| p.subscriber_offer(0, 1));
    let large = edge.join("large", 5002, |p| p.subscriber_offer(0, 1));
    for (_, peer) in [small, large] {
        edge.engine.subscribe(peer, imported, edge.now).unwrap();
    }
    edge.engine
        .set_layer_preference(small.1, imported, Some(0), None, edge.now)
        .unwrap();
    simulcast_frames(&mut origin, &mut edge, alice, 1, 19);
    simulcast_frames(&mut origin, &mut edge, alice, 20, 21);
    let layers = |who: (usize, PeerId)| -> Vec<usize> {
        edge.peers[who.0]
            .received_rtp
            .iter()
            .filter(|p| p.payload_type == VP8_PT)
            .map(|p| layer_of(&p.payload))
            .collect()
    };
    let (small_layers, large_layers) = (layers(small), layers(large));
    assert!(!small_layers.is_empty() && !large_layers.is_empty());
    assert!(
        small_layers.iter().all(|&l| l == 0),
        "the small viewer gets the low layer only: {small_layers:?}"
    );
    assert!(
        large_layers.iter().any(|&l| l > 0),
        "the large viewer gets a higher layer: {large_layers:?}"
    );

    origin.engine.relay_unexport(origin_link, track).unwrap();
    assert_eq!(
        origin.engine.peer_stats(origin_link).unwrap().subscriptions,
        0,
        "unexport frees every layer's slot"
    );
}

#[test]
fn a_relayed_audio_track_carries_its_voice_activity() {
    let mut cluster = cluster(keys(7));
    let audio = cluster.audio;
    let (_, imported) = relay(&mut cluster, audio, 0);
    // 600 ms of loud voice (level 20 -dBov), 20 ms packets with the RFC 6464 extension (id 1).
    for n in 0..30u16 {
        let extensions: [(u8, &[u8]); 1] = [(1, &[0x80 | 20])];
        cluster.origin.peers[cluster.alice].send_rtp_with_extensions(
            OPUS_PT,
            AUDIO_SSRC,
            n,
            u32::from(n) * 960,
            false,
            &[0xfc, n as u8, 1, 2, 3],
            &extensions,
        );
        SimNetwork::exchange(&mut cluster.origin, &mut cluster.edge);
        SimNetwork::advance_both(
            &mut cluster.origin,
            &mut cluster.edge,
            Duration::from_millis(20),
        );
    }
    let speaking_at_edge = cluster.edge.events.iter().any(|event| {
        matches!(event, sfu_core::Event::SpeakingChanged { track, speaking: true, .. } if *track == imported)
    });
    assert!(
        speaking_at_edge,
        "the edge hears Alice speak on the imported track"
    );
    let received = received(&cluster, OPUS_PT);
    assert_eq!(received.len(), 30);
    assert!(
        received
            .iter()
            .all(|p| p.extensions.iter().all(|(id, _)| *id != 1)),
        "Bob's packets carry only what Bob negotiated"
    );
}

/// Sends `frames` frames on every simulcast layer (keyframes on the first), moving time on.
fn simulcast_frames(
    origin: &mut SimNetwork,
    edge: &mut SimNetwork,
    alice: usize,
    from: u16,
    frames: u16,
) {
    for n in from..from + frames {
        for (i, (rid, ssrc, size)) in SIMULCAST.iter().enumerate() {
            let payload = vp8_payload_with_ids(
                n == from,
                1000 * (i as u16 + 1) + n,
                (10 * i as u8).wrapping_add(n as u8),
                *size,
                200 + 10 * i,
            );
            let extensions: [(u8, &[u8]); 2] = [(MID_EXT, b"0"), (RID_EXT, rid.as_bytes())];
            origin.peers[alice].send_rtp_with_extensions(
                VP8_PT,
                *ssrc,
                n,
                n as u32 * 3000,
                true,
                &payload,
                &extensions,
            );
        }
        SimNetwork::exchange(origin, edge);
        SimNetwork::advance_both(origin, edge, Duration::from_millis(33));
    }
}

#[test]
fn dynacast_reaches_across_the_link() {
    let SimulcastCluster {
        mut origin,
        mut edge,
        alice,
        track,
        origin_link,
        edge_link,
        imported,
        ..
    } = simulcast_cluster(7);
    let small = edge.join("small", 5001, |p| p.subscriber_offer(0, 1));
    edge.engine.subscribe(small.1, imported, edge.now).unwrap();
    edge.engine
        .set_layer_preference(small.1, imported, Some(0), None, edge.now)
        .unwrap();
    // Past the engines' warm-up and pause delays (allocator::WARM_UP, PAUSE_AFTER).
    simulcast_frames(&mut origin, &mut edge, alice, 1, 200);

    // The edge's only viewer wants the low layer: that is what the edge needs of the link.
    let wanted = edge
        .events
        .iter()
        .rev()
        .find_map(|event| match event {
            sfu_core::Event::LayersNeeded {
                peer,
                track,
                active,
                ..
            } if *peer == edge_link && *track == imported => Some(active.clone()),
            _ => None,
        })
        .expect("the edge says which layers of the imported track it needs");
    assert_eq!(wanted, vec![true, false, false]);
    let sent_before = origin.engine.peer_stats(origin_link).unwrap().packets_sent;
    simulcast_frames(&mut origin, &mut edge, alice, 201, 10);
    let all_layers = origin.engine.peer_stats(origin_link).unwrap().packets_sent - sent_before;

    origin
        .engine
        .relay_set_wanted_layers(origin_link, track, &wanted, origin.now)
        .unwrap();
    let sent_before = origin.engine.peer_stats(origin_link).unwrap().packets_sent;
    simulcast_frames(&mut origin, &mut edge, alice, 211, 10);
    let low_only = origin.engine.peer_stats(origin_link).unwrap().packets_sent - sent_before;
    simulcast_frames(&mut origin, &mut edge, alice, 221, 80);
    let publisher_told = origin.events.iter().rev().find_map(|event| match event {
        sfu_core::Event::LayersNeeded {
            track: t, active, ..
        } if *t == track => Some(active.clone()),
        _ => None,
    });
    assert_eq!(
        publisher_told,
        Some(vec![true, false, false]),
        "Alice may stop encoding what no one needs"
    );
    assert!(
        low_only * 2 < all_layers,
        "the link carries the low layer only: {low_only} packets vs {all_layers} with every layer"
    );
    assert!(
        edge.peers[small.0]
            .received_rtp
            .iter()
            .rev()
            .take(5)
            .all(|p| layer_of(&p.payload) == 0),
        "the small viewer still plays"
    );
}
