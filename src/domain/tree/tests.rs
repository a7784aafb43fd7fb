use super::*;
use std::collections::BTreeMap;

fn settings(per_object: usize, fanout: usize) -> TreeSettings {
    TreeSettings {
        listeners_per_object: per_object,
        fanout,
    }
}

/// A whole tree simulated: every node's placement and listeners, and a walk from the
/// root as the Worker does it.
struct Tree {
    settings: TreeSettings,
    nodes: BTreeMap<NodePath, (Placement, usize)>,
}

impl Tree {
    fn new(settings: TreeSettings) -> Self {
        Tree {
            settings,
            nodes: BTreeMap::new(),
        }
    }

    /// Places one listener; returns the node that holds it and the hops it took.
    fn join(&mut self, region: Region) -> (NodePath, usize) {
        let mut at = NodePath::root();
        for hops in 0.. {
            let settings = self.settings;
            let (placement, own) = self
                .nodes
                .entry(at.clone())
                .or_insert_with(|| (Placement::new(settings), 0));
            match placement.place(&at, *own, region) {
                Place::Here => {
                    *own += 1;
                    return (at, hops);
                }
                Place::Child(child) => {
                    assert_eq!(child.parent().as_ref(), Some(&at), "{child} under {at}");
                    at = child;
                }
            }
        }
        unreachable!()
    }

    fn leave(&mut self, node: &NodePath) {
        self.nodes.get_mut(node).unwrap().1 -= 1;
    }

    /// Every node reports its subtree to its parent, deepest first (as keep-alives do,
    /// one level per tick; here all at once).
    fn report_all(&mut self) {
        let mut paths: Vec<NodePath> = self.nodes.keys().cloned().collect();
        paths.sort_by_key(|p| std::cmp::Reverse(p.depth()));
        for path in paths {
            let (placement, own) = &self.nodes[&path];
            let subtree = *own as u64 + placement.below();
            if let Some(parent) = path.parent() {
                self.nodes
                    .get_mut(&parent)
                    .unwrap()
                    .0
                    .report(&path, subtree);
            }
        }
    }

    fn children_of(&self, path: &NodePath) -> usize {
        self.nodes[path].0.children().count()
    }
}

#[test]
fn a_small_channel_is_its_root_alone() {
    let mut tree = Tree::new(settings(1000, 32));
    for _ in 0..1000 {
        assert_eq!(tree.join(Region::Weur), (NodePath::root(), 0));
    }
    assert_eq!(tree.nodes.len(), 1);
    assert_eq!(tree.children_of(&NodePath::root()), 0);
}

#[test]
fn with_the_tree_off_everyone_stays_on_the_root() {
    let mut tree = Tree::new(settings(0, 32));
    for _ in 0..5000 {
        assert_eq!(tree.join(Region::Apac).0, NodePath::root());
    }
}

#[test]
fn past_the_root_each_region_gets_one_head_fed_by_the_root() {
    let mut tree = Tree::new(settings(2, 8));
    tree.join(Region::Oc);
    tree.join(Region::Weur);
    assert_eq!(tree.join(Region::Oc).0, NodePath::region_head(Region::Oc));
    assert_eq!(
        tree.join(Region::Weur).0,
        NodePath::region_head(Region::Weur)
    );
    assert_eq!(tree.join(Region::Oc).0, NodePath::region_head(Region::Oc));
    // The Oceania head is full: its listeners spread below it, in Oceania.
    let (node, hops) = tree.join(Region::Oc);
    assert_eq!(node.to_string(), "oc.0");
    assert_eq!(hops, 2);
    assert_eq!(
        tree.children_of(&NodePath::root()),
        2,
        "one copy per region"
    );
}

#[test]
fn no_node_holds_more_than_its_share_or_feeds_more_than_the_fanout() {
    let (per_object, fanout) = (10, 3);
    let mut tree = Tree::new(settings(per_object, fanout));
    // One region more than the root may feed: its listeners go under another's head.
    let regions = [Region::Enam, Region::Weur, Region::Apac, Region::Any];
    let mut deepest = 0;
    for i in 0..3000 {
        let (node, hops) = tree.join(regions[i % regions.len()]);
        deepest = deepest.max(hops);
        assert_eq!(node.depth(), hops);
        let region = regions[i % regions.len()];
        let head = NodePath::region_head(region);
        let has_head = tree.nodes[&NodePath::root()]
            .0
            .children()
            .any(|c| *c == head);
        if has_head && !node.is_root() {
            assert_eq!(node.region(), Some(region), "a listener of {region:?}");
        }
        // Reports arrive now and then, as keep-alives bring them.
        if i % 97 == 0 {
            tree.report_all();
        }
    }
    for (path, (placement, own)) in &tree.nodes {
        assert!(*own <= per_object, "{path} holds {own}");
        let children = placement.children().count();
        assert!(children <= fanout, "{path} feeds {children}");
    }
    // 3000 listeners, 10 per node: at least 300 nodes, and few levels.
    assert!(tree.nodes.len() >= 300, "{} nodes", tree.nodes.len());
    assert!(deepest <= 6, "the tree is {deepest} deep");
}

#[test]
fn the_tree_grows_breadth_first_within_a_region() {
    let mut tree = Tree::new(settings(1, 2));
    let placed: Vec<String> = (0..8)
        .map(|_| tree.join(Region::Sam).0.to_string())
        .collect();
    assert_eq!(
        placed,
        ["root", "sam", "sam.0", "sam.1", "sam.0.0", "sam.1.0", "sam.0.1", "sam.1.1"]
    );
}

#[test]
fn a_tree_that_emptied_is_refilled_from_the_top_once_counts_are_reported() {
    let mut tree = Tree::new(settings(2, 2));
    let held: Vec<NodePath> = (0..12).map(|_| tree.join(Region::Afr).0).collect();
    for node in &held[2..] {
        tree.leave(node);
    }
    tree.report_all();
    // The root's two and the region head's free room are used before anything deeper.
    let (node, _) = tree.join(Region::Afr);
    assert_eq!(node, NodePath::region_head(Region::Afr));
    tree.join(Region::Afr);
    let (node, _) = tree.join(Region::Afr);
    assert_eq!(node.depth(), 2);
    assert!(tree.nodes.len() <= held.iter().collect::<std::collections::BTreeSet<_>>().len());
}

#[test]
fn regions_come_from_the_requests_location() {
    assert_eq!(
        Region::locate(Some("OC"), Some("AU"), Some(151.2)),
        Region::Oc
    );
    assert_eq!(
        Region::locate(Some("NA"), Some("US"), Some(-122.4)),
        Region::Wnam
    );
    assert_eq!(
        Region::locate(Some("NA"), Some("US"), Some(-74.0)),
        Region::Enam
    );
    assert_eq!(
        Region::locate(Some("EU"), Some("FR"), Some(2.3)),
        Region::Weur
    );
    assert_eq!(
        Region::locate(Some("EU"), Some("PL"), Some(21.0)),
        Region::Eeur
    );
    assert_eq!(
        Region::locate(Some("AS"), Some("AE"), Some(55.3)),
        Region::Me
    );
    assert_eq!(
        Region::locate(Some("AS"), Some("JP"), Some(139.7)),
        Region::Apac
    );
    assert_eq!(Region::locate(Some("SA"), Some("BR"), None), Region::Sam);
    assert_eq!(Region::locate(Some("AF"), Some("NG"), None), Region::Afr);
    assert_eq!(Region::locate(None, None, None), Region::Any);
    assert_eq!(Region::Any.location_hint(), None);
    assert_eq!(Region::Oc.location_hint(), Some("oc"));
}

#[test]
fn node_paths_read_back_and_name_their_objects() {
    for text in ["root", "weur", "oc.0", "apac.3.12.0"] {
        assert_eq!(NodePath::parse(text).unwrap().to_string(), text);
    }
    for bad in ["", "mars", "oc.", "oc.x", "oc.-1", "oc.99999", "root.1"] {
        assert_eq!(NodePath::parse(bad), Err(BadNodePath), "{bad}");
    }
    let node = NodePath::parse("oc.2.1").unwrap();
    assert_eq!(node.object_name("hot"), "hot@oc.2.1");
    assert_eq!(NodePath::root().object_name("hot"), "hot");
    assert_eq!(node.parent().unwrap().to_string(), "oc.2");
    assert_eq!(
        NodePath::region_head(Region::Oc).parent(),
        Some(NodePath::root())
    );
    assert_eq!(NodePath::root().parent(), None);
}
