//! The rules' words: each preference's cues, and the phrases that negate a cue or say how firm
//! it is. Written as a user would type them; they are split into words as the message is.

use super::PreferenceCategory::{
    self, Accessibility, Accommodation, Activity, Budget, Cuisine, Destination, Pace, Transport,
};

/// A preference and the cues that reveal it.
pub(super) struct Rule {
    pub(super) category: PreferenceCategory,
    pub(super) preference: &'static str,
    pub(super) cues: &'static [&'static str],
    /// Words that, right before a cue, give it another meaning ("cable car", "ski lift").
    pub(super) not_after: &'static [&'static str],
}

pub(super) const fn rule(
    category: PreferenceCategory,
    preference: &'static str,
    cues: &'static [&'static str],
) -> Rule {
    Rule {
        category,
        preference,
        cues,
        not_after: &[],
    }
}

/// The rules. Cues are written as a user would type them; they are split into words the same
/// way as the message.
pub(super) const RULES: &[Rule] = &[
    // Budget. "budget" and "hotel" are the original TripSage cues; "I travel on a budget" is
    // the original example.
    Rule {
        category: Budget,
        preference: "budget travel",
        cues: &[
            "budget",
            "cheap",
            "cheaper",
            "cheapest",
            "cheaply",
            "affordable",
            "inexpensive",
            "low-cost",
            "low cost",
            "economical",
            "shoestring",
            "no-frills",
            "nothing fancy",
            "backpacking",
            "backpacker",
            "hostel",
            "save money",
        ],
        // "a big budget", "a mid-range budget" are not budget travel.
        not_after: &[
            "big",
            "bigger",
            "large",
            "larger",
            "huge",
            "generous",
            "unlimited",
            "high",
            "range",
            "mid",
            "midrange",
            "moderate",
            "luxury",
        ],
    },
    rule(
        Budget,
        "luxury travel",
        &[
            "luxury",
            "luxurious",
            "upscale",
            "five-star",
            "5-star",
            "high-end",
            "deluxe",
            "lavish",
            "splurge",
            "first class",
            "business class",
        ],
    ),
    rule(
        Budget,
        "mid-range travel",
        &[
            "mid-range",
            "midrange",
            "mid-priced",
            "moderately priced",
            "moderate budget",
            "three-star",
            "3-star",
        ],
    ),
    // Accommodation.
    rule(Accommodation, "hotel", &["hotel"]),
    rule(Accommodation, "hostel", &["hostel"]),
    rule(
        Accommodation,
        "apartment",
        &[
            "apartment",
            "airbnb",
            "vacation rental",
            "holiday rental",
            "holiday let",
            "condo",
        ],
    ),
    rule(Accommodation, "resort", &["resort", "all-inclusive"]),
    rule(
        Accommodation,
        "camping",
        &["camping", "campsite", "campground", "glamping", "tent"],
    ),
    rule(
        Accommodation,
        "bed and breakfast",
        &["bed and breakfast", "b&b", "bnb"],
    ),
    rule(
        Accommodation,
        "guesthouse",
        &["guesthouse", "guest house", "homestay"],
    ),
    // Pace.
    rule(
        Pace,
        "relaxed pace",
        &[
            "relaxed",
            "relaxing",
            "laid-back",
            "leisurely",
            "unhurried",
            "slow pace",
            "slower pace",
            "slow-paced",
            "slow travel",
            "travel slowly",
            "take it easy",
            "take it slow",
        ],
    ),
    rule(
        Pace,
        "fast pace",
        &[
            "packed",
            "busy",
            "fast-paced",
            "fast pace",
            "action-packed",
            "as much as possible",
            "see everything",
            "full itinerary",
        ],
    ),
    // Cuisine.
    rule(Cuisine, "vegetarian food", &["vegetarian", "veggie"]),
    rule(Cuisine, "vegan food", &["vegan", "plant-based"]),
    rule(
        Cuisine,
        "gluten-free food",
        &["gluten-free", "coeliac", "celiac"],
    ),
    rule(Cuisine, "halal food", &["halal"]),
    rule(Cuisine, "kosher food", &["kosher"]),
    rule(Cuisine, "seafood", &["seafood", "sea food"]),
    rule(
        Cuisine,
        "street food",
        &["street food", "street stalls", "food stalls", "hawker"],
    ),
    rule(
        Cuisine,
        "local cuisine",
        &[
            "local food",
            "local cuisine",
            "local dish",
            "local specialty",
            "local specialties",
            "regional food",
            "regional cuisine",
        ],
    ),
    rule(
        Cuisine,
        "fine dining",
        &["fine dining", "michelin", "gourmet", "tasting menu"],
    ),
    // Transport.
    Rule {
        category: Transport,
        preference: "train travel",
        cues: &[
            "train",
            "rail",
            "railway",
            "by rail",
            "eurail",
            "interrail",
            "sleeper train",
        ],
        not_after: &["to"],
    },
    rule(
        Transport,
        "air travel",
        &[
            "flight", "flying", "fly", "plane", "airplane", "by air", "airline",
        ],
    ),
    Rule {
        category: Transport,
        preference: "car travel",
        cues: &[
            "car",
            "rental car",
            "car rental",
            "hire car",
            "car hire",
            "road trip",
            "driving",
            "drive",
        ],
        not_after: &["cable", "dining", "sleeper", "sleeping", "buffet"],
    },
    rule(Transport, "bus travel", &["bus", "coach"]),
    rule(
        Transport,
        "cycling",
        &["cycling", "bike", "biking", "bicycle", "by bicycle"],
    ),
    rule(
        Transport,
        "walking",
        &["walking", "walk", "walkable", "on foot"],
    ),
    // Accessibility.
    rule(Accessibility, "wheelchair access", &["wheelchair"]),
    rule(
        Accessibility,
        "accessible travel",
        &["accessible", "accessibility", "disability", "disabled"],
    ),
    rule(
        Accessibility,
        "step-free access",
        &[
            "step-free",
            "no stairs",
            "without stairs",
            "avoid stairs",
            "cant climb stairs",
            "cannot climb stairs",
            "ground floor",
        ],
    ),
    rule(
        Accessibility,
        "reduced mobility",
        &["mobility", "walking aid", "walker", "cane", "crutches"],
    ),
    Rule {
        category: Accessibility,
        preference: "elevator access",
        cues: &["elevator", "lift"],
        not_after: &["ski", "chair"],
    },
    rule(
        Accessibility,
        "hearing accessibility",
        &[
            "deaf",
            "hard of hearing",
            "hearing impaired",
            "hearing impairment",
            "hearing loss",
            "hearing aid",
            "sign language",
        ],
    ),
    rule(
        Accessibility,
        "visual accessibility",
        &[
            "blind",
            "low vision",
            "visually impaired",
            "visual impairment",
            "partially sighted",
            "guide dog",
        ],
    ),
    // Activities.
    rule(
        Activity,
        "museums",
        &["museum", "gallery", "galleries", "art galleries"],
    ),
    Rule {
        category: Activity,
        preference: "hiking",
        cues: &["hiking", "hike", "trekking", "trek", "trail"],
        not_after: &["paper", "audit"],
    },
    rule(Activity, "beaches", &["beach"]),
    rule(
        Activity,
        "nightlife",
        &[
            "nightlife",
            "night life",
            "nightclub",
            "clubbing",
            "bars",
            "pubs",
        ],
    ),
    rule(
        Activity,
        "shopping",
        &["shopping", "boutiques", "markets", "souvenirs"],
    ),
    rule(
        Activity,
        "history",
        &[
            "history",
            "historical",
            "historic",
            "heritage",
            "ruins",
            "castle",
            "archaeological",
        ],
    ),
    rule(
        Activity,
        "nature",
        &[
            "nature",
            "wildlife",
            "national park",
            "outdoors",
            "countryside",
        ],
    ),
    rule(
        Activity,
        "food tours",
        &[
            "food tour",
            "food tours",
            "food tasting",
            "cooking class",
            "wine tasting",
        ],
    ),
    // Destinations: the kind of place, not a named one.
    rule(Destination, "mountains", &["mountain", "alps", "alpine"]),
    rule(Destination, "islands", &["island"]),
    rule(
        Destination,
        "cities",
        &["city break", "city trip", "big cities", "big city"],
    ),
    rule(
        Destination,
        "off the beaten path",
        &[
            "off the beaten path",
            "off the beaten track",
            "hidden gems",
            "less touristy",
        ],
    ),
    rule(
        Destination,
        "warm destinations",
        &["tropical", "warm weather", "sunny", "sunshine"],
    ),
];

/// Words and phrases that negate a cue after them (see [`NEGATION_WINDOW`]).
pub(super) const NEGATIONS: &[&str] = &[
    "no",
    "not",
    "never",
    "nor",
    "neither",
    "nothing",
    "none",
    "without",
    "avoid",
    "avoiding",
    "hate",
    "hates",
    "dislike",
    "dislikes",
    "don't",
    "doesn't",
    "didn't",
    "won't",
    "wouldn't",
    "can't",
    "cannot",
    "couldn't",
    "isn't",
    "aren't",
    "rather than",
    "instead of",
    "other than",
];

/// Words that, right after a negation, cancel it: "don't mind", "no problem with", "not only".
pub(super) const NEGATION_CANCELLERS: &[&str] = &[
    "mind", "problem", "problems", "issue", "issues", "opposed", "against", "only", "just",
];

/// Firm preferences and needs, before the cue.
pub(super) const STRONG_INTENTS: &[&str] = &[
    "prefer",
    "prefers",
    "preferably",
    "love",
    "loves",
    "always",
    "must",
    "need",
    "needs",
    "require",
    "requires",
    "have to",
    "has to",
    "only",
    "definitely",
    "insist",
    "really want",
];

/// Firm preferences and needs, after the cue: "vegetarian food is a must".
pub(super) const STRONG_POSTFIX_INTENTS: &[&str] = &[
    "must",
    "essential",
    "important",
    "required",
    "necessary",
    "mandatory",
    "preferred",
    "non-negotiable",
];

/// Wishes and habits, before the cue.
pub(super) const MILD_INTENTS: &[&str] = &[
    "like",
    "likes",
    "want",
    "wants",
    "enjoy",
    "enjoys",
    "looking for",
    "interested in",
    "keen on",
    "fan of",
    "usually",
    "normally",
    "typically",
    "generally",
    "tend to",
    "i travel",
    "we travel",
];

/// Words that start a new clause and are not words of it.
pub(super) const CLAUSE_WORDS: &[&str] = &["but", "however", "although", "though", "whereas"];
