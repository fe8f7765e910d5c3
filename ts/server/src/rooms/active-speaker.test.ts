import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { ParticipantId } from '@conclave/protocol'
import { ActiveSpeakerDetector } from './active-speaker.js'

const alice = 'p-alice' as ParticipantId
const bob = 'p-bob' as ParticipantId

test('the first to speak for a second takes the floor, not before', () => {
  const detector = new ActiveSpeakerDetector()
  detector.setSpeaking(alice, true, 0)
  assert.equal(detector.decide(999), false)
  assert.equal(detector.nextDecisionAt(), 1000)
  assert.equal(detector.decide(1000), true)
  assert.equal(detector.current, alice)
})

test('a short interjection does not take the floor; speech longer than 1.5 s does', () => {
  const detector = new ActiveSpeakerDetector()
  detector.setSpeaking(alice, true, 0)
  detector.decide(1000)
  detector.setSpeaking(alice, false, 1500)
  detector.setSpeaking(bob, true, 2000)
  assert.equal(detector.decide(3400), false, '1.4 s of bob is an interjection')
  detector.setSpeaking(bob, false, 3400)
  detector.setSpeaking(bob, true, 3600)
  assert.equal(detector.decide(4900), false, 'the pause restarted his count')
  assert.equal(detector.nextDecisionAt(), 5100)
  assert.equal(detector.decide(5100), true)
  assert.equal(detector.current, bob)
})

test('crosstalk does not move the floor: speech counts only once the speaker is silent', () => {
  const detector = new ActiveSpeakerDetector()
  detector.setSpeaking(alice, true, 0)
  detector.decide(1000)
  detector.setSpeaking(bob, true, 1200)
  assert.equal(detector.decide(10_000), false, 'alice still talks')
  assert.equal(detector.nextDecisionAt(), undefined)
  detector.setSpeaking(alice, false, 10_000)
  assert.equal(detector.decide(11_499), false)
  assert.equal(detector.decide(11_500), true)
  assert.equal(detector.current, bob)
  assert.equal(detector.decide(60_000), false, 'alice, silent, does not bounce back')
})

test('the speaker keeps the floor while silent and loses it on leaving', () => {
  const detector = new ActiveSpeakerDetector()
  detector.setSpeaking(alice, true, 0)
  detector.decide(1000)
  detector.setSpeaking(alice, false, 2000)
  assert.equal(detector.decide(60_000), false)
  assert.equal(detector.current, alice)
  detector.remove(alice)
  assert.equal(detector.current, undefined)
})

test('of two who both earned the floor, the one speaking longer gets it', () => {
  const detector = new ActiveSpeakerDetector()
  detector.setSpeaking(bob, true, 300)
  detector.setSpeaking(alice, true, 100)
  assert.equal(detector.decide(2000), true)
  assert.equal(detector.current, alice)
})
