//! One stream (a channel, or the Mercure hub) over many objects: where a node sits in its
//! stream's fan-out tree, which region a listener is in, and where the next one goes.
//!
//! The channel's root object keeps what must be in one place (ids, history, the publish
//! acknowledgement) and holds listeners itself until it has `listeners_per_object` of
//! them; a small channel is that one object. Past that, new listeners go to the tree:
//! the root feeds one *region head* per region (so one copy of each event crosses to a
//! region, however many listen there), and every node below holds up to
//! `listeners_per_object` listeners and feeds up to `fanout` children of its own region.
//! A node is a listener of its parent, over the same event stream and `Last-Event-ID`
//! resume as any client, so no node writes to more than `listeners_per_object + fanout`
//! streams per event.
//!
//! Placement is local: each node decides between itself and one of its children from its
//! own count and its children's reported counts (see [`Placement`]), so a listener walks
//! down at most one hop per level.

use std::fmt;

/// The settings of the tree (`LISTENERS_PER_OBJECT`, `FANOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeSettings {
    /// Listeners one object holds before new listeners go further down the tree.
    pub listeners_per_object: usize,
    /// Children one object feeds at most.
    pub fanout: usize,
}

/// Where a listener is, as far as placing it near its leaf goes: the Durable Object
/// location hints (Cloudflare's documented regions), or `Any` when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// Western North America.
    Wnam,
    /// Eastern North America.
    Enam,
    /// South America.
    Sam,
    /// Western Europe.
    Weur,
    /// Eastern Europe.
    Eeur,
    /// Asia-Pacific.
    Apac,
    /// Oceania.
    Oc,
    /// Africa.
    Afr,
    /// The Middle East.
    Me,
    /// Location unknown: no hint.
    Any,
}

const REGIONS: [Region; 10] = [
    Region::Wnam,
    Region::Enam,
    Region::Sam,
    Region::Weur,
    Region::Eeur,
    Region::Apac,
    Region::Oc,
    Region::Afr,
    Region::Me,
    Region::Any,
];

/// Countries of the Middle East (ISO 3166-1 alpha-2), served from the `me` region.
const MIDDLE_EAST: &[&str] = &[
    "AE", "BH", "CY", "EG", "IL", "IQ", "IR", "JO", "KW", "LB", "OM", "PS", "QA", "SA", "SY", "TR",
    "YE",
];

/// Longitude (degrees east) dividing western from eastern North America.
const NORTH_AMERICA_DIVIDE: f32 = -100.0;
/// Longitude dividing western from eastern Europe.
const EUROPE_DIVIDE: f32 = 15.0;

impl Region {
    /// The region of a request, from what the runtime knows of its origin (Cloudflare's
    /// `request.cf`: continent code, country code, longitude).
    pub fn locate(
        continent: Option<&str>,
        country: Option<&str>,
        longitude: Option<f32>,
    ) -> Region {
        if country.is_some_and(|c| MIDDLE_EAST.contains(&c)) {
            return Region::Me;
        }
        match continent {
            Some("NA") => match longitude {
                Some(lon) if lon < NORTH_AMERICA_DIVIDE => Region::Wnam,
                _ => Region::Enam,
            },
            Some("SA") => Region::Sam,
            Some("EU") => match longitude {
                Some(lon) if lon >= EUROPE_DIVIDE => Region::Eeur,
                _ => Region::Weur,
            },
            Some("AS") => Region::Apac,
            Some("OC") | Some("AN") => Region::Oc,
            Some("AF") => Region::Afr,
            _ => Region::Any,
        }
    }

    /// Its name in a node's path, and the location hint it stands for.
    pub fn code(self) -> &'static str {
        match self {
            Region::Wnam => "wnam",
            Region::Enam => "enam",
            Region::Sam => "sam",
            Region::Weur => "weur",
            Region::Eeur => "eeur",
            Region::Apac => "apac",
            Region::Oc => "oc",
            Region::Afr => "afr",
            Region::Me => "me",
            Region::Any => "any",
        }
    }

    /// The Durable Object location hint for objects of this region.
    pub fn location_hint(self) -> Option<&'static str> {
        (self != Region::Any).then(|| self.code())
    }

    pub fn parse(code: &str) -> Option<Region> {
        REGIONS.into_iter().find(|r| r.code() == code)
    }
}

/// A node of a channel's tree: the root, or a region head and the path of child indices
/// below it. Written `weur.0.3` (the root is written `root`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodePath {
    region: Option<Region>,
    indices: Vec<u16>,
}

/// The separator between a channel's name and a node's path in the object's name: not a
/// character a channel name may hold, so no channel's root is ever another's node.
const NAME_SEPARATOR: char = '@';
const ROOT: &str = "root";
/// Deepest node path accepted (far beyond what any audience needs).
pub const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadNodePath;

impl fmt::Display for BadNodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a node of a stream's tree")
    }
}

impl NodePath {
    pub fn root() -> NodePath {
        NodePath {
            region: None,
            indices: Vec::new(),
        }
    }

    pub fn region_head(region: Region) -> NodePath {
        NodePath {
            region: Some(region),
            indices: Vec::new(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.region.is_none()
    }

    pub fn region(&self) -> Option<Region> {
        self.region
    }

    /// Levels below the root (a region head is at 1).
    pub fn depth(&self) -> usize {
        if self.is_root() {
            0
        } else {
            1 + self.indices.len()
        }
    }

    /// The `index`th child of a node below the root (the root's children are region heads).
    pub fn child(&self, index: u16) -> NodePath {
        debug_assert!(!self.is_root(), "the root's children are region heads");
        let mut indices = self.indices.clone();
        indices.push(index);
        NodePath {
            region: self.region,
            indices,
        }
    }

    /// The node this one listens to (none for the root).
    pub fn parent(&self) -> Option<NodePath> {
        self.region?;
        let mut parent = self.clone();
        if parent.indices.pop().is_none() {
            return Some(NodePath::root());
        }
        Some(parent)
    }

    /// The Durable Object's name for this node of `channel`: the channel's name for the
    /// root (as it has always been), `channel@path` below it.
    pub fn object_name(&self, channel: &str) -> String {
        if self.is_root() {
            channel.to_string()
        } else {
            format!("{channel}{NAME_SEPARATOR}{self}")
        }
    }

    pub fn parse(text: &str) -> Result<NodePath, BadNodePath> {
        if text == ROOT {
            return Ok(NodePath::root());
        }
        let mut parts = text.split('.');
        let region = parts.next().and_then(Region::parse).ok_or(BadNodePath)?;
        let indices = parts
            .map(|p| {
                (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| p.parse::<u16>().ok())
                    .flatten()
                    .ok_or(BadNodePath)
            })
            .collect::<Result<Vec<u16>, BadNodePath>>()?;
        if indices.len() + 1 > MAX_DEPTH {
            return Err(BadNodePath);
        }
        Ok(NodePath {
            region: Some(region),
            indices,
        })
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.region {
            None => f.write_str(ROOT),
            Some(region) => {
                f.write_str(region.code())?;
                for i in &self.indices {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
        }
    }
}

/// Where a listener goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// This node holds it.
    Here,
    /// This child (or a node below it) does.
    Child(NodePath),
}

/// One child as its parent knows it: how many listeners its subtree holds, as it last
/// reported, plus those placed there since.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ChildLoad {
    path: NodePath,
    listeners: u64,
}

/// A node's placement decisions and what it knows of its children.
#[derive(Debug, Clone)]
pub struct Placement {
    settings: TreeSettings,
    children: Vec<ChildLoad>,
}

impl Placement {
    pub fn new(settings: TreeSettings) -> Self {
        Placement {
            settings,
            children: Vec::new(),
        }
    }

    /// Where the next listener of `region` goes, when this node (`at`) holds `own`
    /// listeners. Counts it on the child it sends it to, until that child reports.
    ///
    /// - Under `listeners_per_object` listeners, a node holds it: a small channel is
    ///   its root alone.
    /// - The root sends it to its region's head (made when first needed), or, once it
    ///   feeds `fanout` children, to the least loaded of them.
    /// - Any other node makes a new child when every child it has is full and it has
    ///   fewer than `fanout`; otherwise the least loaded child takes it.
    pub fn place(&mut self, at: &NodePath, own: usize, region: Region) -> Place {
        let per_object = self.settings.listeners_per_object;
        if per_object == 0 || own < per_object || at.depth() + 1 >= MAX_DEPTH {
            return Place::Here;
        }
        let fanout = self.settings.fanout.max(1);
        let index = if at.is_root() {
            let head = NodePath::region_head(region);
            match self.children.iter().position(|c| c.path == head) {
                Some(i) => i,
                None if self.children.len() < fanout => self.add(head),
                None => self.least_loaded(),
            }
        } else {
            let all_full = self
                .children
                .iter()
                .all(|c| c.listeners >= per_object as u64);
            if all_full && self.children.len() < fanout {
                self.add(at.child(self.children.len() as u16))
            } else {
                self.least_loaded()
            }
        };
        let child = &mut self.children[index];
        child.listeners += 1;
        Place::Child(child.path.clone())
    }

    /// A child said how many listeners its subtree holds.
    pub fn report(&mut self, child: &NodePath, listeners: u64) {
        match self.children.iter_mut().find(|c| &c.path == child) {
            Some(known) => known.listeners = listeners,
            None => self.children.push(ChildLoad {
                path: child.clone(),
                listeners,
            }),
        }
    }

    /// Listeners in the children's subtrees, as far as this node knows.
    pub fn below(&self) -> u64 {
        self.children.iter().map(|c| c.listeners).sum()
    }

    /// The children this node has placed listeners on or heard from.
    pub fn children(&self) -> impl Iterator<Item = &NodePath> {
        self.children.iter().map(|c| &c.path)
    }

    fn add(&mut self, path: NodePath) -> usize {
        self.children.push(ChildLoad { path, listeners: 0 });
        self.children.len() - 1
    }

    fn least_loaded(&self) -> usize {
        self.children
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| c.listeners)
            .map(|(i, _)| i)
            .expect("a node past its own capacity has children")
    }
}

#[cfg(test)]
mod tests;
