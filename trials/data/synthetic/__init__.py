"""Synthetic stand-in data written in the real on-disk layouts, so the real parsers load it.

Modules: `scene` (domain styles, cameras, backgrounds, camera effects), `person` and `vehicle` (the two
renderers), `layouts` (which shots exist and how each real layout names and lists them), `generator`
(`synthesize`: render, write atomically, reuse).

`synthesize(layout, out, ids, seed)` draws `ids` identities and renders their images:

* persons (market1501, msmt17): a figure (head, torso, arms, legs, shoes) on a background. An identity
  owns its upper/lower/shoe/hair colours, a torso pattern (stripes, checks, dots, a band...), sleeve and
  leg-wear kinds, a bag, a hat, and its body proportions;
* vehicles (veri, vehicleid): a two-box car (body + cabin) projected from the camera's viewpoint. An
  identity owns its body, roof and window colours, its type and proportions, a side stripe, a sunroof or
  roof rack, and its rim colour.

Each camera changes appearance: background, illumination and colour cast, blur, noise, subject scale and
offset, viewpoint (persons: seen from the front or the back; vehicles: azimuth and elevation), and random
partial occlusion. Identities are learnable from pixels but raw-pixel matching is far from perfect.

Two rendering domains: A (one saturation level, bright values, few neutrals; daylight; plain or
gradient backgrounds; mild colour casts) and B (hues shifted half a step, two saturation levels, darker
values, more neutrals, muted car paints; dark textured backgrounds; bluish casts, more blur and noise;
smaller, more offset subjects; more occlusion). Every random draw comes from a generator seeded by
(seed, layout family, domain, ...): the same arguments give byte-identical files, and other seeds, domains
or layouts do not share identities.

Splits follow the real datasets: identities are split in disjoint train and test halves; each id is seen
by 2-4 cameras; train has 6-10 images per id; a test id has one query image per camera it is seen by and
6-10 gallery images (at least one per such camera). Market-1501 also gets junk (-1) and distractor (0000)
images in bounding_box_test; MSMT17's list_val holds one image per train id; VehicleID's nested test lists
hold the first third, two thirds and all of the test ids (800, 1600, 2400).

A `synthetic.json` file in the dataset folder records the arguments, a fingerprint of this package's code and
the counts; calling `synthesize` again with the same arguments (and code) reuses the folder.
"""

from trials.data.synthetic.generator import synthesize
from trials.data.synthetic.layouts import DEFAULT_IDS, DEFAULT_IMAGE_SIZE, DOMAINS, LAYOUTS, MARKER

__all__ = ["DEFAULT_IDS", "DEFAULT_IMAGE_SIZE", "DOMAINS", "LAYOUTS", "MARKER", "synthesize"]
