//! Dependency Descriptor RTP header extension (AV1 RTP specification, appendix A): which
//! spatial/temporal layer a frame belongs to and which decode targets need it. Format only:
//! fixed-capacity parsing without allocation per packet, a writer for tests and tools; the
//! choice of what to forward lives in `svc.rs`.

use std::fmt;

/// The extension's URI in `a=extmap`.
pub const URI: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

/// Template ids are 6 bits, so a structure has at most 64 templates.
pub const MAX_TEMPLATES: usize = 64;
/// `dt_cnt_minus_one` is 5 bits.
pub const MAX_DECODE_TARGETS: usize = 32;
/// Chains are at most one per decode target.
pub const MAX_CHAINS: usize = MAX_DECODE_TARGETS;
/// Spatial layers we accept (as libwebrtc does); a structure with more is refused.
pub const MAX_SPATIAL_LAYERS: usize = 4;
/// Temporal layers we accept; a structure with more is refused.
pub const MAX_TEMPORAL_LAYERS: usize = 8;
/// Frame dependencies (`fdiff`s) we keep per template or frame; more is refused.
pub const MAX_FDIFFS: usize = 16;

/// Why an extension element is not a usable Dependency Descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyDescriptorError {
    /// Shorter than the three bytes of mandatory fields.
    TooShort,
    /// A field runs past the end of the element.
    Truncated,
    /// The frame refers to a template but no structure has been received yet.
    NoStructure,
    /// The template id is not one of the current structure's.
    UnknownTemplate,
    /// More spatial or temporal layers than [`MAX_SPATIAL_LAYERS`]/[`MAX_TEMPORAL_LAYERS`].
    TooManyLayers,
    /// More templates than template ids.
    TooManyTemplates,
    /// More frame dependencies than [`MAX_FDIFFS`].
    TooManyFdiffs,
}

impl fmt::Display for DependencyDescriptorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooShort => "dependency descriptor shorter than 3 bytes",
            Self::Truncated => "dependency descriptor field runs past its end",
            Self::NoStructure => "dependency descriptor before any template structure",
            Self::UnknownTemplate => "dependency descriptor template id not in the structure",
            Self::TooManyLayers => "dependency descriptor has too many layers",
            Self::TooManyTemplates => "dependency descriptor has too many templates",
            Self::TooManyFdiffs => "dependency descriptor has too many frame dependencies",
        })
    }
}

impl std::error::Error for DependencyDescriptorError {}

type Error = DependencyDescriptorError;

/// Decode target indication: what a frame is to one decode target (spec A.8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dti {
    /// The decode target does not use the frame.
    NotPresent = 0,
    /// No later frame of the decode target depends on it.
    Discardable = 1,
    /// A decoder can start decoding the target here (all later frames of the target depend only
    /// on this frame and later ones).
    Switch = 2,
    /// Later frames of the decode target depend on it.
    Required = 3,
}

/// One [`Dti`] per decode target, two bits each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dtis(u64);

impl Dtis {
    /// The indication for `decode_target`; `NotPresent` beyond the 32 possible targets.
    pub fn get(self, decode_target: usize) -> Dti {
        if decode_target >= MAX_DECODE_TARGETS {
            return Dti::NotPresent;
        }
        match (self.0 >> (2 * decode_target)) & 3 {
            0 => Dti::NotPresent,
            1 => Dti::Discardable,
            2 => Dti::Switch,
            _ => Dti::Required,
        }
    }

    /// Sets the indication for `decode_target`; ignored beyond the 32 possible targets.
    pub fn set(&mut self, decode_target: usize, dti: Dti) {
        if decode_target < MAX_DECODE_TARGETS {
            let shift = 2 * decode_target;
            self.0 = (self.0 & !(3 << shift)) | ((dti as u64) << shift);
        }
    }

    fn from_bits(bits: u64) -> Self {
        Dtis(bits)
    }
}

/// How one frame (or one template of frames) fits the layering: its layer, what each decode
/// target makes of it, which earlier frames it depends on, and its chain distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDependencies {
    pub spatial_id: u8,
    pub temporal_id: u8,
    pub dtis: Dtis,
    fdiff_count: u8,
    fdiffs: [u16; MAX_FDIFFS],
    chain_fdiffs: [u8; MAX_CHAINS],
}

impl Default for FrameDependencies {
    fn default() -> Self {
        FrameDependencies {
            spatial_id: 0,
            temporal_id: 0,
            dtis: Dtis::default(),
            fdiff_count: 0,
            fdiffs: [0; MAX_FDIFFS],
            chain_fdiffs: [0; MAX_CHAINS],
        }
    }
}

impl FrameDependencies {
    /// Differences of frame numbers to the frames this one references.
    pub fn fdiffs(&self) -> &[u16] {
        &self.fdiffs[..usize::from(self.fdiff_count)]
    }

    /// Frame number difference to the previous frame of `chain` (0: this frame starts it).
    pub fn chain_fdiff(&self, chain: usize) -> u8 {
        self.chain_fdiffs.get(chain).copied().unwrap_or(0)
    }

    fn push_fdiff(&mut self, fdiff: u16) -> Result<(), Error> {
        let slot = self
            .fdiffs
            .get_mut(usize::from(self.fdiff_count))
            .ok_or(Error::TooManyFdiffs)?;
        *slot = fdiff;
        self.fdiff_count += 1;
        Ok(())
    }
}

/// The template dependency structure a publisher sends with its keyframes. Decode target `i`
/// shows spatial layers up to [`Self::decode_target_layer`]`(i).0` at temporal layers up to
/// `.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameDependencyStructure {
    /// Template id of the first template; frames' ids count on from it, modulo 64.
    pub template_id_offset: u8,
    decode_target_count: u8,
    chain_count: u8,
    template_count: u8,
    max_spatial_id: u8,
    templates: [FrameDependencies; MAX_TEMPLATES],
    decode_target_protected_by: [u8; MAX_DECODE_TARGETS],
    decode_target_layers: [(u8, u8); MAX_DECODE_TARGETS],
    resolutions: Option<[(u16, u16); MAX_SPATIAL_LAYERS]>,
}

impl Default for FrameDependencyStructure {
    fn default() -> Self {
        FrameDependencyStructure {
            template_id_offset: 0,
            decode_target_count: 1,
            chain_count: 0,
            template_count: 0,
            max_spatial_id: 0,
            templates: [FrameDependencies::default(); MAX_TEMPLATES],
            decode_target_protected_by: [0; MAX_DECODE_TARGETS],
            decode_target_layers: [(0, 0); MAX_DECODE_TARGETS],
            resolutions: None,
        }
    }
}

impl FrameDependencyStructure {
    /// An empty structure for `decode_target_count` (1..=32) targets, to be filled with
    /// [`Self::push_template`] in layer order. For writing; parsing fills its own.
    pub fn new(template_id_offset: u8, decode_target_count: u8) -> Self {
        FrameDependencyStructure {
            template_id_offset: template_id_offset & 0x3f,
            decode_target_count: decode_target_count.clamp(1, MAX_DECODE_TARGETS as u8),
            ..Default::default()
        }
    }

    pub fn decode_target_count(&self) -> usize {
        usize::from(self.decode_target_count)
    }

    pub fn chain_count(&self) -> usize {
        usize::from(self.chain_count)
    }

    pub fn templates(&self) -> &[FrameDependencies] {
        &self.templates[..usize::from(self.template_count)]
    }

    pub fn max_spatial_id(&self) -> u8 {
        self.max_spatial_id
    }

    /// `(spatial id, highest temporal id)` of a decode target: the layers of the templates that
    /// the target uses (spec: `DecodeTargetSpatialId`, `DecodeTargetMaxTemporalId`).
    pub fn decode_target_layer(&self, decode_target: usize) -> (u8, u8) {
        self.decode_target_layers
            .get(decode_target)
            .copied()
            .unwrap_or_default()
    }

    /// The chain protecting a decode target, when the structure has chains.
    pub fn decode_target_protected_by(&self, decode_target: usize) -> Option<u8> {
        (self.chain_count > 0)
            .then(|| self.decode_target_protected_by.get(decode_target).copied())
            .flatten()
    }

    /// Render width and height of a spatial layer, when the structure announces them.
    pub fn resolution(&self, spatial_id: u8) -> Option<(u16, u16)> {
        self.resolutions?.get(usize::from(spatial_id)).copied()
    }

    /// Appends a template. Templates must come in layer order: spatial ids ascending, temporal
    /// ids within a spatial layer starting at 0 and rising by at most one (the wire format
    /// encodes each template's layer as a step from the previous one). `dtis` has one entry per
    /// decode target, `chain_fdiffs` one per chain (each 0..=15), `fdiffs` are 1..=16.
    pub fn push_template(
        &mut self,
        spatial_id: u8,
        temporal_id: u8,
        dtis: &[Dti],
        fdiffs: &[u8],
        chain_fdiffs: &[u8],
    ) -> Result<(), Error> {
        let count = usize::from(self.template_count);
        if count >= MAX_TEMPLATES {
            return Err(Error::TooManyTemplates);
        }
        if usize::from(spatial_id) >= MAX_SPATIAL_LAYERS
            || usize::from(temporal_id) >= MAX_TEMPORAL_LAYERS
        {
            return Err(Error::TooManyLayers);
        }
        let in_order = match count.checked_sub(1).map(|i| &self.templates[i]) {
            None => spatial_id == 0 && temporal_id == 0,
            Some(prev) => {
                (spatial_id == prev.spatial_id
                    && (temporal_id == prev.temporal_id || temporal_id == prev.temporal_id + 1))
                    || (spatial_id == prev.spatial_id + 1 && temporal_id == 0)
            }
        };
        if !in_order || fdiffs.iter().any(|f| !(1..=16).contains(f)) {
            return Err(Error::UnknownTemplate);
        }
        let mut template = FrameDependencies {
            spatial_id,
            temporal_id,
            ..Default::default()
        };
        for (dt, &dti) in dtis.iter().take(self.decode_target_count()).enumerate() {
            template.dtis.set(dt, dti);
        }
        for &fdiff in fdiffs {
            template.push_fdiff(u16::from(fdiff))?;
        }
        for (slot, &fdiff) in template.chain_fdiffs.iter_mut().zip(chain_fdiffs) {
            *slot = fdiff & 0x0f;
        }
        self.templates[count] = template;
        self.template_count += 1;
        self.max_spatial_id = spatial_id;
        self.derive_decode_target_layers();
        Ok(())
    }

    /// Declares chains: `protected_by[i]` is the chain of decode target `i` (each below
    /// `protected_by.len()`, the chain count, at most the decode target count).
    pub fn set_chains(&mut self, chain_count: u8, protected_by: &[u8]) {
        self.chain_count = chain_count.min(self.decode_target_count);
        for (slot, &chain) in self.decode_target_protected_by.iter_mut().zip(protected_by) {
            *slot = chain;
        }
    }

    /// Announces each spatial layer's render size, lowest first.
    pub fn set_resolutions(&mut self, sizes: &[(u16, u16)]) {
        let mut all = [(0, 0); MAX_SPATIAL_LAYERS];
        for (slot, &size) in all.iter_mut().zip(sizes) {
            *slot = size;
        }
        self.resolutions = Some(all);
    }

    fn derive_decode_target_layers(&mut self) {
        for dt in 0..self.decode_target_count() {
            let mut layer = (0, 0);
            for template in self.templates() {
                if template.dtis.get(dt) != Dti::NotPresent {
                    layer.0 = layer.0.max(template.spatial_id);
                    layer.1 = layer.1.max(template.temporal_id);
                }
            }
            self.decode_target_layers[dt] = layer;
        }
    }

    fn template(&self, template_id: u8) -> Result<&FrameDependencies, Error> {
        let index = (usize::from(template_id) + 64 - usize::from(self.template_id_offset)) % 64;
        self.templates().get(index).ok_or(Error::UnknownTemplate)
    }
}

/// One packet's descriptor. `frame` is resolved against the structure in force (custom fields
/// of the packet override its template's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependencyDescriptor {
    pub start_of_frame: bool,
    pub end_of_frame: bool,
    pub template_id: u8,
    pub frame_number: u16,
    /// The packet carried a new template structure (it does on keyframes).
    pub structure_attached: bool,
    /// The active decode targets bitmask, when the packet sets it (a new structure activates
    /// every target).
    pub active_decode_targets: Option<u32>,
    pub frame: FrameDependencies,
}

/// Reads the Dependency Descriptors of one RTP stream: keeps the latest template structure (the
/// only state the format has) and the active decode targets. Allocates its two structures once,
/// on the first structure received; reading allocates nothing.
#[derive(Debug, Default)]
pub struct DependencyDescriptorReader {
    structure: Option<Box<FrameDependencyStructure>>,
    scratch: Option<Box<FrameDependencyStructure>>,
    active_decode_targets: u32,
}

impl DependencyDescriptorReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// The structure in force, once one was received.
    pub fn structure(&self) -> Option<&FrameDependencyStructure> {
        self.structure.as_deref()
    }

    /// Bit `i` set: decode target `i` is being sent (all, until the sender says otherwise).
    pub fn active_decode_targets(&self) -> u32 {
        self.active_decode_targets
    }

    /// Parses one extension element. A malformed element leaves the reader as it was.
    pub fn read(&mut self, data: &[u8]) -> Result<DependencyDescriptor, Error> {
        let scratch = self.scratch.get_or_insert_with(Box::default);
        let descriptor = parse(data, self.structure.as_deref(), scratch)?;
        if descriptor.structure_attached {
            // The new structure is in `scratch`: swap it in, keeping the old box for next time.
            std::mem::swap(&mut self.structure, &mut self.scratch);
            if self.scratch.is_none() {
                self.scratch = Some(Box::default());
            }
        }
        if let Some(active) = descriptor.active_decode_targets {
            self.active_decode_targets = active;
        }
        Ok(descriptor)
    }
}

/// Parses one extension element against `structure` (the one in force, if any). A structure
/// the packet carries is parsed into `new_structure` and used for this packet; it is valid only
/// if the result says `structure_attached`.
pub fn parse(
    data: &[u8],
    structure: Option<&FrameDependencyStructure>,
    new_structure: &mut FrameDependencyStructure,
) -> Result<DependencyDescriptor, Error> {
    if data.len() < 3 {
        return Err(Error::TooShort);
    }
    let mut bits = BitReader::new(data);
    let start_of_frame = bits.flag()?;
    let end_of_frame = bits.flag()?;
    let template_id = bits.read(6)? as u8;
    let frame_number = bits.read(16)? as u16;

    let (mut attached, mut active_present, mut custom_dtis, mut custom_fdiffs, mut custom_chains) =
        (false, false, false, false, false);
    if data.len() > 3 {
        attached = bits.flag()?;
        active_present = bits.flag()?;
        custom_dtis = bits.flag()?;
        custom_fdiffs = bits.flag()?;
        custom_chains = bits.flag()?;
    }
    let structure = if attached {
        read_structure(&mut bits, new_structure)?;
        &*new_structure
    } else {
        structure.ok_or(Error::NoStructure)?
    };
    let all_targets = all_targets_mask(structure.decode_target_count());
    let mut active_decode_targets = attached.then_some(all_targets);
    if active_present {
        active_decode_targets = Some(bits.read(structure.decode_target_count() as u32)?);
    }

    let mut frame = *structure.template(template_id)?;
    if custom_dtis {
        let mut dtis = 0u64;
        for dt in 0..structure.decode_target_count() {
            dtis |= u64::from(bits.read(2)?) << (2 * dt);
        }
        frame.dtis = Dtis::from_bits(dtis);
    }
    if custom_fdiffs {
        frame.fdiff_count = 0;
        loop {
            let size = bits.read(2)?;
            if size == 0 {
                break;
            }
            let fdiff = bits.read(4 * size)? + 1;
            frame.push_fdiff(fdiff as u16)?;
        }
    }
    if custom_chains {
        for chain in 0..structure.chain_count() {
            frame.chain_fdiffs[chain] = bits.read(8)? as u8;
        }
    }
    // The rest is zero padding to the element's length.
    Ok(DependencyDescriptor {
        start_of_frame,
        end_of_frame,
        template_id,
        frame_number,
        structure_attached: attached,
        active_decode_targets,
        frame,
    })
}

fn all_targets_mask(count: usize) -> u32 {
    if count >= 32 {
        u32::MAX
    } else {
        (1u32 << count) - 1
    }
}

fn read_structure(
    bits: &mut BitReader<'_>,
    out: &mut FrameDependencyStructure,
) -> Result<(), Error> {
    out.template_id_offset = bits.read(6)? as u8;
    out.decode_target_count = bits.read(5)? as u8 + 1;
    out.chain_count = 0;
    out.resolutions = None;
    let dt_count = out.decode_target_count();

    // Template layers: each template's (spatial, temporal) is a step from the previous one.
    let (mut spatial, mut temporal) = (0u8, 0u8);
    let mut count = 0;
    loop {
        let template = out
            .templates
            .get_mut(count)
            .ok_or(Error::TooManyTemplates)?;
        *template = FrameDependencies {
            spatial_id: spatial,
            temporal_id: temporal,
            ..Default::default()
        };
        count += 1;
        match bits.read(2)? {
            0 => {}
            1 => temporal += 1,
            2 => {
                temporal = 0;
                spatial += 1;
            }
            _ => break,
        }
        if usize::from(spatial) >= MAX_SPATIAL_LAYERS
            || usize::from(temporal) >= MAX_TEMPORAL_LAYERS
        {
            return Err(Error::TooManyLayers);
        }
    }
    out.template_count = count as u8;
    out.max_spatial_id = spatial;

    for template in &mut out.templates[..count] {
        let mut dtis = 0u64;
        for dt in 0..dt_count {
            dtis |= u64::from(bits.read(2)?) << (2 * dt);
        }
        template.dtis = Dtis::from_bits(dtis);
    }
    for template in &mut out.templates[..count] {
        while bits.flag()? {
            template.push_fdiff(bits.read(4)? as u16 + 1)?;
        }
    }
    let chain_count = bits.non_symmetric(dt_count as u32 + 1)? as usize;
    if chain_count > 0 {
        for dt in 0..dt_count {
            out.decode_target_protected_by[dt] = bits.non_symmetric(chain_count as u32)? as u8;
        }
        for template in &mut out.templates[..count] {
            for chain in 0..chain_count {
                template.chain_fdiffs[chain] = bits.read(4)? as u8;
            }
        }
    }
    out.chain_count = chain_count as u8;
    out.derive_decode_target_layers();
    if bits.flag()? {
        let mut sizes = [(0, 0); MAX_SPATIAL_LAYERS];
        for size in &mut sizes[..=usize::from(spatial)] {
            let width = bits.read(16)? + 1;
            let height = bits.read(16)? + 1;
            // Sizes are 16-bit minus one; 65536 does not fit and is kept as the largest.
            *size = (width.min(65535) as u16, height.min(65535) as u16);
        }
        out.resolutions = Some(sizes);
    }
    Ok(())
}

/// Reads big-endian bit fields.
struct BitReader<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, position: 0 }
    }

    fn flag(&mut self) -> Result<bool, Error> {
        Ok(self.read(1)? == 1)
    }

    /// Reads `count` (0..=32) bits.
    fn read(&mut self, count: u32) -> Result<u32, Error> {
        let count = count as usize;
        if count > 32 || self.position + count > self.data.len() * 8 {
            return Err(Error::Truncated);
        }
        let mut value = 0u64;
        let mut remaining = count;
        // A byte (or what is left of it) per step.
        while remaining > 0 {
            let byte = u64::from(self.data[self.position / 8]);
            let available = 8 - self.position % 8;
            let take = available.min(remaining);
            let bits = (byte >> (available - take)) & ((1 << take) - 1);
            value = value << take | bits;
            self.position += take;
            remaining -= take;
        }
        Ok(value as u32)
    }

    /// `ns(n)` (spec 4.10.10): a value below `n` in `floor(log2(n))` or one more bits.
    fn non_symmetric(&mut self, n: u32) -> Result<u32, Error> {
        let width = 32 - n.leading_zeros();
        if width == 0 {
            return Ok(0);
        }
        let short_values = (1u32 << width) - n;
        let value = self.read(width - 1)?;
        if value < short_values {
            return Ok(value);
        }
        let extra = self.read(1)?;
        Ok((value << 1) - short_values + extra)
    }
}

/// What [`write`] puts in a packet's descriptor beyond the mandatory fields.
#[derive(Debug, Clone, Copy)]
pub struct DescriptorFields {
    pub start_of_frame: bool,
    pub end_of_frame: bool,
    /// Index into the structure's templates (the written id adds the offset).
    pub template_index: u8,
    pub frame_number: u16,
    /// Attach the structure (as on a keyframe's first packet).
    pub attach_structure: bool,
    /// Write an active decode targets bitmask.
    pub active_decode_targets: Option<u32>,
}

/// Appends a descriptor for a frame of `structure` with no custom fields. Allocates only if
/// `out` lacks capacity.
pub fn write(structure: &FrameDependencyStructure, fields: &DescriptorFields, out: &mut Vec<u8>) {
    let mut bits = BitWriter::new(out);
    bits.write(u32::from(fields.start_of_frame), 1);
    bits.write(u32::from(fields.end_of_frame), 1);
    let template_id =
        (u32::from(fields.template_index) + u32::from(structure.template_id_offset)) % 64;
    bits.write(template_id, 6);
    bits.write(u32::from(fields.frame_number), 16);
    if !fields.attach_structure && fields.active_decode_targets.is_none() {
        return;
    }
    bits.write(u32::from(fields.attach_structure), 1);
    bits.write(u32::from(fields.active_decode_targets.is_some()), 1);
    bits.write(0, 3);
    if fields.attach_structure {
        write_structure(structure, &mut bits);
    }
    if let Some(active) = fields.active_decode_targets {
        bits.write(active, structure.decode_target_count() as u32);
    }
}

fn write_structure(structure: &FrameDependencyStructure, bits: &mut BitWriter<'_>) {
    bits.write(u32::from(structure.template_id_offset), 6);
    bits.write(u32::from(structure.decode_target_count) - 1, 5);
    let templates = structure.templates();
    for (i, template) in templates.iter().enumerate() {
        let step = match templates.get(i + 1) {
            None => 3,
            Some(next) if next.spatial_id > template.spatial_id => 2,
            Some(next) if next.temporal_id > template.temporal_id => 1,
            Some(_) => 0,
        };
        bits.write(step, 2);
    }
    for template in templates {
        for dt in 0..structure.decode_target_count() {
            bits.write(template.dtis.get(dt) as u32, 2);
        }
    }
    for template in templates {
        for &fdiff in template.fdiffs() {
            bits.write(1, 1);
            bits.write(u32::from(fdiff) - 1, 4);
        }
        bits.write(0, 1);
    }
    let dt_count = structure.decode_target_count() as u32;
    bits.write_non_symmetric(u32::from(structure.chain_count), dt_count + 1);
    if structure.chain_count > 0 {
        for dt in 0..structure.decode_target_count() {
            bits.write_non_symmetric(
                u32::from(structure.decode_target_protected_by[dt]),
                u32::from(structure.chain_count),
            );
        }
        for template in templates {
            for chain in 0..structure.chain_count() {
                bits.write(u32::from(template.chain_fdiff(chain)), 4);
            }
        }
    }
    match structure.resolutions {
        None => bits.write(0, 1),
        Some(sizes) => {
            bits.write(1, 1);
            for &(width, height) in &sizes[..=usize::from(structure.max_spatial_id)] {
                bits.write(u32::from(width.max(1)) - 1, 16);
                bits.write(u32::from(height.max(1)) - 1, 16);
            }
        }
    }
}

/// Appends big-endian bit fields, zero-padding the last byte.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    used_bits: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, used_bits: 8 }
    }

    fn write(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            if self.used_bits == 8 {
                self.out.push(0);
                self.used_bits = 0;
            }
            let bit = ((value >> i) & 1) as u8;
            if let Some(last) = self.out.last_mut() {
                *last |= bit << (7 - self.used_bits);
            }
            self.used_bits += 1;
        }
    }

    fn write_non_symmetric(&mut self, value: u32, n: u32) {
        let width = 32 - n.leading_zeros();
        if width == 0 {
            return;
        }
        let short_values = (1u32 << width) - n;
        if value < short_values {
            self.write(value, width - 1);
        } else {
            let shifted = value + short_values;
            self.write(shifted >> 1, width - 1);
            self.write(shifted & 1, 1);
        }
    }
}

/// Fuzzing entry point: the first byte splits the input into two descriptors read in turn, so
/// the second may use a structure the first carried.
pub fn fuzz_parse(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (first, second) = rest.split_at(split);
    let mut reader = DependencyDescriptorReader::new();
    for element in [first, second, first] {
        if let Ok(descriptor) = reader.read(element) {
            let _ = descriptor.frame.fdiffs();
            if let Some(structure) = reader.structure() {
                for dt in 0..structure.decode_target_count() {
                    let _ = structure.decode_target_layer(dt);
                    let _ = structure.decode_target_protected_by(dt);
                }
                let _ = structure.resolution(structure.max_spatial_id());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs a string of '0'/'1' (spaces ignore) into bytes, zero-padding the last one: test
    /// vectors are written field by field from the spec's syntax tables.
    fn bits(fields: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, bit) in fields.chars().filter(|c| !c.is_whitespace()).enumerate() {
            if i % 8 == 0 {
                out.push(0);
            }
            if bit == '1' {
                *out.last_mut().unwrap() |= 0x80 >> (i % 8);
            }
        }
        out
    }

    /// L1T2 with a keyframe template: 2 decode targets (T0, T0+T1), one chain, 640x360.
    const L1T2_KEYFRAME: &str = concat!(
        "1 1 000000 0000000000000001 ", // start, end, template id 0, frame number 1
        "1 0 0 0 0 ",                   // structure attached, no active mask, no custom fields
        "000000 00001 ",                // template id offset 0, 2 decode targets
        "00 01 11 ",                    // layers: S0T0, S0T0 (same), S0T1 (+1 temporal), end
        "10 10  11 11  00 01 ",         // DTIs: key switch/switch, T0 required, T1 -/discardable
        "0  1 0001 0  1 0000 0 ",       // fdiffs: key none, T0 {2}, T1 {1}
        "1 0 ",                         // ns(3) = 1 chain; protected_by ns(1) takes no bits
        "0000 0010 0001 ",              // chain fdiffs per template
        "1 0000001001111111 0000000101100111"  // resolutions: 640x360
    );

    fn l1t2() -> FrameDependencyStructure {
        let mut scratch = FrameDependencyStructure::default();
        let d = parse(&bits(L1T2_KEYFRAME), None, &mut scratch).unwrap();
        assert!(d.structure_attached);
        scratch
    }

    #[test]
    fn mandatory_fields_are_read_bit_exactly() {
        let s = l1t2();
        // start 1, end 0, template id 2, frame number 0x1234.
        let data = bits("1 0 000010 0001001000110100");
        assert_eq!(data, [0x82, 0x12, 0x34]);
        let d = parse(&data, Some(&s), &mut FrameDependencyStructure::default()).unwrap();
        assert!(d.start_of_frame && !d.end_of_frame);
        assert_eq!((d.template_id, d.frame_number), (2, 0x1234));
        assert!(!d.structure_attached);
        assert_eq!(d.active_decode_targets, None);
        assert_eq!((d.frame.spatial_id, d.frame.temporal_id), (0, 1));
        assert_eq!(d.frame.dtis.get(0), Dti::NotPresent);
        assert_eq!(d.frame.dtis.get(1), Dti::Discardable);
        assert_eq!(d.frame.fdiffs(), &[1]);
        assert_eq!(d.frame.chain_fdiff(0), 1);
    }

    #[test]
    fn a_keyframe_structure_is_read_field_by_field() {
        let s = l1t2();
        assert_eq!(s.template_id_offset, 0);
        assert_eq!(s.decode_target_count(), 2);
        assert_eq!(s.templates().len(), 3);
        assert_eq!(s.max_spatial_id(), 0);
        let layers: Vec<_> = s
            .templates()
            .iter()
            .map(|t| (t.spatial_id, t.temporal_id))
            .collect();
        assert_eq!(layers, [(0, 0), (0, 0), (0, 1)]);
        assert_eq!(s.templates()[0].dtis.get(0), Dti::Switch);
        assert_eq!(s.templates()[1].dtis.get(1), Dti::Required);
        assert_eq!(s.templates()[1].fdiffs(), &[2]);
        assert!(s.templates()[0].fdiffs().is_empty());
        assert_eq!(s.chain_count(), 1);
        assert_eq!(s.decode_target_protected_by(1), Some(0));
        assert_eq!(s.templates()[1].chain_fdiff(0), 2);
        assert_eq!(s.decode_target_layer(0), (0, 0));
        assert_eq!(s.decode_target_layer(1), (0, 1));
        assert_eq!(s.resolution(0), Some((640, 360)));
        assert_eq!(s.resolution(1), Some((0, 0)));
    }

    #[test]
    fn the_keyframe_packet_activates_every_decode_target_and_uses_its_own_structure() {
        let mut reader = DependencyDescriptorReader::new();
        let d = reader.read(&bits(L1T2_KEYFRAME)).unwrap();
        assert_eq!(d.active_decode_targets, Some(0b11));
        assert_eq!(d.frame.dtis.get(1), Dti::Switch);
        assert_eq!(reader.active_decode_targets(), 0b11);
        assert!(reader.structure().is_some());
    }

    #[test]
    fn custom_dtis_fdiffs_and_chains_override_the_template() {
        let s = l1t2();
        let data = bits(concat!(
            "1 1 000001 0000000000000111 ", // template 1 (S0T0 delta), frame 7
            "0 1 1 1 1 ",                   // active mask, custom DTIs, fdiffs, chains
            "01 ",                          // only decode target 0 active
            "11 00 ",                       // DTIs: required, not present
            "01 0011  10 00010000  00 ",    // fdiffs 4 and 17, end
            "00000101"                      // chain 0: 5 frames back
        ));
        let d = parse(&data, Some(&s), &mut FrameDependencyStructure::default()).unwrap();
        assert_eq!(d.frame_number, 7);
        assert_eq!(d.active_decode_targets, Some(0b01));
        assert_eq!(d.frame.dtis.get(0), Dti::Required);
        assert_eq!(d.frame.dtis.get(1), Dti::NotPresent);
        assert_eq!(d.frame.fdiffs(), &[4, 17]);
        assert_eq!(d.frame.chain_fdiff(0), 5);
        assert_eq!((d.frame.spatial_id, d.frame.temporal_id), (0, 0));
    }

    #[test]
    fn template_ids_count_on_from_the_offset_modulo_64() {
        let mut keyframe = bits(L1T2_KEYFRAME);
        // Offset 62: the key template is id 62, T0 delta 63, T1 0.
        keyframe[3] |= 0b0000_0111;
        keyframe[4] |= 0b1100_0000;
        keyframe[0] = (keyframe[0] & 0xc0) | 62;
        let mut reader = DependencyDescriptorReader::new();
        assert!(reader.read(&keyframe).unwrap().structure_attached);
        assert_eq!(reader.structure().unwrap().template_id_offset, 62);
        let t1 = reader.read(&bits("0 1 000000 0000000000000010")).unwrap();
        assert_eq!(t1.frame.temporal_id, 1);
        let key = reader.read(&bits("1 0 111110 0000000000000011")).unwrap();
        assert_eq!(key.frame.dtis.get(0), Dti::Switch);
        assert_eq!(
            reader.read(&bits("1 0 000001 0000000000000011")),
            Err(DependencyDescriptorError::UnknownTemplate)
        );
    }

    #[test]
    fn malformed_descriptors_are_typed_errors_and_leave_the_reader_alone() {
        use DependencyDescriptorError as E;
        let mut reader = DependencyDescriptorReader::new();
        assert_eq!(reader.read(&[0x80, 0x00]), Err(E::TooShort));
        assert_eq!(reader.read(&[0x80, 0x00, 0x01]), Err(E::NoStructure));
        let keyframe = bits(L1T2_KEYFRAME);
        for len in 4..keyframe.len() {
            assert_eq!(
                reader.read(&keyframe[..len]),
                Err(E::Truncated),
                "{len} bytes"
            );
        }
        assert!(reader.structure().is_none());
        reader.read(&keyframe).unwrap();
        // Template 3 of 3, then five spatial layers.
        assert_eq!(
            reader.read(&bits("1 1 000011 0000000000000001")),
            Err(E::UnknownTemplate)
        );
        let too_many_layers =
            bits("1 1 000000 0000000000000001 1 0 0 0 0 000000 00000 10 10 10 10 11");
        assert_eq!(reader.read(&too_many_layers), Err(E::TooManyLayers));
        let too_many_temporal =
            bits("1 1 000000 0000000000000001 1 0 0 0 0 000000 00000 01 01 01 01 01 01 01 01 11");
        assert_eq!(reader.read(&too_many_temporal), Err(E::TooManyLayers));
        // The L1T2 structure is still in force.
        assert_eq!(reader.structure().unwrap().templates().len(), 3);
        let mut fdiffs = String::from("1 1 000001 0000000000000001 0 0 0 1 0 ");
        for _ in 0..=MAX_FDIFFS {
            fdiffs.push_str("01 0000 ");
        }
        fdiffs.push_str("00");
        assert_eq!(reader.read(&bits(&fdiffs)), Err(E::TooManyFdiffs));
    }

    #[test]
    fn non_symmetric_values_use_the_short_and_long_codes() {
        // ns(5): w = 3, m = 3: 0..=2 in two bits, 3 and 4 in three.
        for (value, code) in [(0, "00"), (2, "10"), (3, "110"), (4, "111")] {
            let data = bits(code);
            assert_eq!(BitReader::new(&data).non_symmetric(5), Ok(value));
            let mut out = Vec::new();
            BitWriter::new(&mut out).write_non_symmetric(value, 5);
            assert_eq!(out, data, "ns(5) of {value}");
        }
        assert_eq!(BitReader::new(&[]).non_symmetric(1), Ok(0));
    }

    /// L3T3 in the key-SVC shape: 9 decode targets (spatial * 3 + temporal), spatial layers
    /// predict from each other only on keyframes, one chain per spatial layer.
    fn l3t3_key() -> FrameDependencyStructure {
        use Dti::*;
        let mut s = FrameDependencyStructure::new(5, 9);
        for spatial in 0..3u8 {
            let dtis = |frame_t: u8, key: bool| -> [Dti; 9] {
                core::array::from_fn(|dt| {
                    let (ds, dtt) = (dt as u8 / 3, dt as u8 % 3);
                    if key && spatial <= ds {
                        if spatial == 0 {
                            Switch
                        } else {
                            Required
                        }
                    } else if ds != spatial || frame_t > dtt {
                        NotPresent
                    } else if frame_t == 0 {
                        Required
                    } else if frame_t == dtt {
                        Discardable
                    } else {
                        Switch
                    }
                })
            };
            let key_fdiffs: &[u8] = if spatial == 0 { &[] } else { &[1] };
            s.push_template(spatial, 0, &dtis(0, true), key_fdiffs, &[0, 1, 2])
                .unwrap();
            s.push_template(spatial, 0, &dtis(0, false), &[12], &[3, 3, 3])
                .unwrap();
            s.push_template(spatial, 1, &dtis(1, false), &[6], &[6, 6, 6])
                .unwrap();
            s.push_template(spatial, 2, &dtis(2, false), &[3], &[3, 3, 3])
                .unwrap();
        }
        s.set_chains(3, &[0, 0, 0, 1, 1, 1, 2, 2, 2]);
        s.set_resolutions(&[(320, 180), (640, 360), (1280, 720)]);
        s
    }

    #[test]
    fn a_written_l3t3_structure_reads_back_the_same() {
        let s = l3t3_key();
        assert_eq!(s.decode_target_layer(4), (1, 1));
        assert_eq!(s.decode_target_layer(8), (2, 2));
        let mut out = Vec::new();
        let fields = DescriptorFields {
            start_of_frame: true,
            end_of_frame: false,
            template_index: 4,
            frame_number: 65535,
            attach_structure: true,
            active_decode_targets: Some(0b111),
        };
        write(&s, &fields, &mut out);
        let mut reader = DependencyDescriptorReader::new();
        let d = reader.read(&out).unwrap();
        assert_eq!(*reader.structure().unwrap(), s);
        assert_eq!(d.template_id, 9);
        assert_eq!(d.frame_number, 65535);
        assert_eq!((d.frame.spatial_id, d.frame.temporal_id), (1, 0));
        assert_eq!(d.active_decode_targets, Some(0b111));
        assert_eq!(reader.active_decode_targets(), 0b111);

        out.clear();
        let delta = DescriptorFields {
            template_index: 11,
            attach_structure: false,
            active_decode_targets: None,
            ..fields
        };
        write(&s, &delta, &mut out);
        assert_eq!(out.len(), 3);
        let d = reader.read(&out).unwrap();
        assert_eq!((d.frame.spatial_id, d.frame.temporal_id), (2, 2));
        assert_eq!(d.frame.dtis.get(8), Dti::Discardable);
        assert_eq!(d.frame.dtis.get(5), Dti::NotPresent);
        assert_eq!(reader.active_decode_targets(), 0b111);
    }

    #[test]
    fn templates_out_of_layer_order_are_refused() {
        let mut s = FrameDependencyStructure::new(0, 1);
        assert!(s.push_template(0, 1, &[Dti::Switch], &[], &[]).is_err());
        s.push_template(0, 0, &[Dti::Switch], &[], &[]).unwrap();
        assert!(s.push_template(0, 2, &[Dti::Switch], &[], &[]).is_err());
        assert!(s.push_template(2, 0, &[Dti::Switch], &[], &[]).is_err());
        assert!(s.push_template(0, 1, &[Dti::Switch], &[17], &[]).is_err());
    }

    #[test]
    fn garbage_and_mutated_descriptors_never_panic() {
        let s = l3t3_key();
        let mut seed = Vec::new();
        write(
            &s,
            &DescriptorFields {
                start_of_frame: true,
                end_of_frame: true,
                template_index: 0,
                frame_number: 1,
                attach_structure: true,
                active_decode_targets: None,
            },
            &mut seed,
        );
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut buf = vec![0u8; seed.len() + 8];
        for i in 0..20_000 {
            let len = (next() as usize) % buf.len();
            if i % 2 == 0 {
                let n = len.min(seed.len());
                buf[..n].copy_from_slice(&seed[..n]);
                for _ in 0..(next() % 4) {
                    let at = (next() as usize) % buf.len();
                    buf[at] ^= 1 << (next() % 8);
                }
            } else {
                for b in &mut buf[..len] {
                    *b = next() as u8;
                }
            }
            fuzz_parse(&buf[..len]);
        }
    }
}
