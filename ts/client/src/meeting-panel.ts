// The meeting page's side panel: participants with their state, the waiting room and host actions
// (admit, deny, mute, remove, promote, lock), hand raise and chat. DOM only; the Meeting does the rest.

import type { BreakoutGroupRequest, ChatMessage, ParticipantId, ParticipantInfo } from '@conclave/protocol'
import type { Meeting } from './meeting.js'

/** Renders the panel into `root` and keeps it in step with `meeting`; returns the function that detaches it. */
export function attachPanel(meeting: Meeting, root: HTMLElement, report: (text: string) => void): () => void {
  root.replaceChildren()
  root.hidden = false
  const isModerator = () => meeting.self?.role === 'host' || meeting.self?.role === 'cohost'
  let handRaised = false

  const controls = el('div', { className: 'controls' })
  const hand = button('Raise hand', { id: 'hand' }, () => act(handRaised ? meeting.lowerHand() : meeting.raiseHand()))
  const lock = button('Lock room', { id: 'lock' }, () => act(meeting.setLocked(!(meeting.room?.locked ?? false))))
  const share = button('Share screen', { id: 'share-screen' }, () =>
    act((meeting.screenShare === undefined ? meeting.startScreenShare() : meeting.stopScreenShare()).finally(renderControls)),
  )
  controls.append(hand, lock, share)

  // Everyone sees that the room is recorded; hosts and cohosts start and stop it.
  const recordingIndicator = el('p', { id: 'recording-indicator', className: 'recording', textContent: '● Recording', hidden: true })
  const record = button('Record', { id: 'record' }, () => act(meeting.recording === undefined ? meeting.startRecording() : meeting.stopRecording()))
  controls.append(record)

  // Breakouts: everyone sees which group they are in; hosts and cohosts split everyone (themselves
  // included) round-robin into N groups and end the split.
  const breakoutStatus = el('p', { id: 'breakout-status', hidden: true })
  const breakoutControls = el('div', { id: 'breakout-controls', className: 'controls' })
  const groupCount = el('input', { id: 'breakout-count', type: 'number', min: '2', max: '20', value: '2', title: 'Groups' })
  const split = button('Split into groups', { id: 'split-breakouts' }, () => act(meeting.createBreakouts(roundRobin(Number(groupCount.value)))))
  const endBreakouts = button('End breakouts', { id: 'end-breakouts' }, () => act(meeting.endBreakouts()))
  breakoutControls.append(groupCount, split, endBreakouts)
  const tiles = document.getElementById('tiles')
  // Tiles of people outside our group stay hidden, including ones the page adds later.
  const tileWatch = new MutationObserver(() => hideOtherGroups())
  if (tiles !== null) tileWatch.observe(tiles, { childList: true })

  const waitingSection = el('section', { id: 'waiting-section' })
  const waitingList = el('ul', { id: 'waiting-list' })
  waitingSection.append(el('h2', { textContent: 'Waiting room' }), button('Admit all', { id: 'admit-all' }, () => act(meeting.admit())), waitingList)

  const participantList = el('ul', { id: 'participants' })
  const chatLog = el('ul', { id: 'chat-log' })
  const chatForm = el('form', { id: 'chat-form' })
  const chatText = el('input', { id: 'chat-text', placeholder: 'Message', maxLength: 2000 })
  const chatTo = el('select', { id: 'chat-to' })
  chatForm.append(chatText, chatTo, el('button', { type: 'submit', textContent: 'Send' }))
  chatForm.addEventListener('submit', (event) => {
    event.preventDefault()
    const text = chatText.value.trim()
    if (text === '') return
    const to = chatTo.value === '' ? undefined : (chatTo.value as ParticipantId)
    chatText.value = ''
    act(meeting.chat(text, to))
  })

  root.append(recordingIndicator, breakoutStatus, controls, breakoutControls, waitingSection, el('h2', { textContent: 'Participants' }), participantList, el('h2', { textContent: 'Chat' }), chatLog, chatForm)

  function renderParticipants(): void {
    const items: HTMLElement[] = []
    const me = meeting.participantId
    if (me !== undefined && meeting.self !== undefined) items.push(participantItem({ participantId: me, name: `${meeting.self.name} (you)`, role: meeting.self.role, handRaised }))
    for (const participant of meeting.participants.values()) items.push(participantItem(participant))
    participantList.replaceChildren(...items)
    const options = [el('option', { value: '', textContent: 'Everyone' })]
    for (const participant of meeting.participants.values()) options.push(el('option', { value: participant.participantId, textContent: participant.name }))
    const chosen = chatTo.value
    chatTo.replaceChildren(...options)
    chatTo.value = [...meeting.participants.keys()].includes(chosen as ParticipantId) ? chosen : ''
  }

  function participantItem(participant: ParticipantInfo): HTMLElement {
    const item = el('li', {})
    item.dataset.participantId = participant.participantId
    const label = `${participant.name}${participant.role && participant.role !== 'guest' ? ` · ${participant.role}` : ''}${participant.handRaised ? ' · hand raised' : ''}`
    item.append(el('span', { className: 'name', textContent: label }))
    if (participant.participantId === meeting.participantId && meeting.mutedOwnTracks.size > 0) {
      const muted = [...meeting.mutedOwnTracks]
      item.append(button('Unmute', { id: 'unmute' }, () => act(Promise.all(muted.map((trackId) => meeting.unmuteTrack(trackId))))))
    }
    if (participant.participantId !== meeting.participantId && isModerator() && participant.role !== undefined) {
      const tracks = [...meeting.tracks.values()].filter((track) => track.participantId === participant.participantId && !track.muted)
      if (tracks.length > 0) item.append(button('Mute', { className: 'mute' }, () => act(Promise.all(tracks.map((track) => meeting.muteTrack(track.trackId))))))
      if (participant.handRaised) item.append(button('Lower hand', { className: 'lower' }, () => act(meeting.lowerHand(participant.participantId))))
      item.append(button('Remove', { className: 'remove' }, () => act(meeting.remove(participant.participantId))))
      if (meeting.self?.role === 'host' && participant.role === 'guest') {
        item.append(button('Make cohost', { className: 'promote' }, () => act(meeting.setRole(participant.participantId, 'cohost'))))
      }
    }
    return item
  }

  function roundRobin(count: number): BreakoutGroupRequest[] {
    const groups = Array.from({ length: Math.max(2, Math.min(20, Math.floor(count) || 2)) }, (_, i) => ({ name: `Group ${i + 1}`, participantIds: [] as ParticipantId[] }))
    const me = meeting.participantId
    const everyone = [...(me === undefined ? [] : [me]), ...[...meeting.participants.values()].filter((p) => p.role !== undefined).map((p) => p.participantId)]
    everyone.forEach((id, i) => groups[i % groups.length]?.participantIds.push(id))
    return groups
  }

  function hideOtherGroups(): void {
    for (const tile of tiles?.querySelectorAll<HTMLElement>('[data-participant-id]') ?? []) {
      const id = tile.dataset.participantId as ParticipantId
      // Only remote participants' tiles: our own is labelled `local`.
      tile.hidden = meeting.participants.has(id) && !meeting.sharesBreakoutWith(id)
    }
  }

  function renderBreakouts(): void {
    const running = meeting.breakouts !== undefined
    breakoutStatus.hidden = !running
    breakoutStatus.textContent = running ? `You are in ${meeting.breakoutGroup?.name ?? 'the main room'}` : ''
    breakoutControls.hidden = !isModerator()
    split.hidden = running
    groupCount.hidden = running
    endBreakouts.hidden = !running
    hideOtherGroups()
  }

  function renderRecording(): void {
    recordingIndicator.hidden = meeting.recording === undefined
    record.hidden = !isModerator()
    record.textContent = meeting.recording === undefined ? 'Record' : 'Stop recording'
  }

  function renderWaiting(): void {
    waitingSection.hidden = !isModerator() || meeting.waiting.length === 0
    waitingList.replaceChildren(
      ...meeting.waiting.map((waiting) => {
        const item = el('li', { textContent: `${waiting.name} ` })
        item.dataset.participantId = waiting.participantId
        item.append(
          button('Admit', { className: 'admit' }, () => act(meeting.admit(waiting.participantId))),
          button('Deny', { className: 'deny' }, () => act(meeting.deny(waiting.participantId))),
        )
        return item
      }),
    )
  }

  function renderControls(): void {
    hand.textContent = handRaised ? 'Lower hand' : 'Raise hand'
    lock.hidden = !isModerator()
    lock.textContent = meeting.room?.locked ? 'Unlock room' : 'Lock room'
    const grants = meeting.self?.grants
    share.hidden = grants === undefined || !grants.canPublish || !grants.canPublishSources.includes('screen')
    share.textContent = meeting.screenShare === undefined ? 'Share screen' : 'Stop sharing'
    chatForm.hidden = meeting.self?.grants.canChat === false
  }

  function renderAll(): void {
    renderControls()
    renderRecording()
    renderBreakouts()
    renderWaiting()
    renderParticipants()
  }

  function addChat(message: ChatMessage): void {
    const from = message.from === meeting.participantId ? 'You' : message.fromName
    const to = message.to === undefined ? '' : ` → ${message.to === meeting.participantId ? 'you' : (meeting.participants.get(message.to)?.name ?? 'someone')} (private)`
    const item = el('li', { textContent: `${from}${to}: ${message.text}` })
    if (message.to !== undefined) item.className = 'private'
    chatLog.append(item)
  }

  function act(pending: Promise<unknown>): void {
    pending.catch((error: unknown) => report(`That did not work: ${error instanceof Error ? error.message : String(error)}`))
  }

  const stops = [
    meeting.on('participant-joined', renderParticipants),
    meeting.on('participant-left', renderParticipants),
    meeting.on('participant-updated', (participant) => {
      if (participant.participantId === meeting.participantId) handRaised = participant.handRaised ?? false
      renderAll()
    }),
    meeting.on('track', renderParticipants),
    meeting.on('track-ended', renderParticipants),
    meeting.on('track-muted', ({ mine }) => {
      if (mine) report('A host muted one of your tracks.')
      renderParticipants()
    }),
    meeting.on('track-unmuted', renderParticipants),
    meeting.on('waiting-room', renderWaiting),
    meeting.on('permissions', ({ role }) => {
      report(`You are now ${role === 'cohost' ? 'a cohost' : `a ${role}`}.`)
      renderAll()
    }),
    meeting.on('room', renderControls),
    meeting.on('screen-share-ended', renderControls),
    meeting.on('chat', addChat),
    meeting.on('breakouts', renderBreakouts),
    meeting.on('recording', ({ failed, partial }) => {
      if (failed) report(`The recording failed${partial ? '; what was recorded is kept' : ''}.`)
      renderRecording()
    }),
  ]
  renderAll()
  return () => {
    for (const stop of stops) stop()
    tileWatch.disconnect()
    root.replaceChildren()
    root.hidden = true
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]>): HTMLElementTagNameMap[K] {
  return Object.assign(document.createElement(tag), props)
}

function button(text: string, props: Partial<HTMLButtonElement>, onClick: () => void): HTMLButtonElement {
  const node = el('button', { type: 'button', textContent: text, ...props })
  node.addEventListener('click', onClick)
  return node
}
