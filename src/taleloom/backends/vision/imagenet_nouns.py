"""ImageNet's 1000 labels as the plain nouns a child would use, each in a group that can be said when the
exact noun is uncertain ("tabby" → cat → animal; "espresso" → cup of coffee → drink).

The table was written from the label list alone (WordNet's own hierarchy: breeds → dog, varieties →
apple), never from the benchmark photos. Labels not listed keep their first WordNet lemma and the group
"thing", which has no phrase of its own: such a label is named only when the classifier is sure of it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

# group → (what to say when only the group is certain, parent group or "")
GROUPS: dict[str, tuple[str, str]] = {
    "dog": ("a dog", "animal"), "cat": ("a cat", "animal"), "big cat": ("a big cat", "animal"),
    "bird": ("a bird", "animal"), "fish": ("a fish", "animal"), "sea animal": ("a sea animal", "animal"),
    "bug": ("a small creature", "animal"), "monkey": ("a monkey", "animal"), "reptile": ("a reptile", "animal"),
    "animal": ("an animal", ""),
    "person": ("a person", ""), "clothes": ("clothes", ""),
    "car": ("a car", "vehicle"), "boat": ("a boat", "vehicle"), "train": ("a train", "vehicle"),
    "aircraft": ("an aircraft", "vehicle"), "truck": ("a truck", "vehicle"), "vehicle": ("a vehicle", ""),
    "building": ("a building", "place"), "landscape": ("a landscape", "place"),
    "shore": ("the water's edge", "landscape"), "place": ("a place outdoors", ""),
    "fruit": ("some fruit", "food"), "vegetable": ("some vegetables", "food"), "drink": ("a drink", "food"),
    "food": ("some food", ""),
    "plant": ("a plant", ""), "flower": ("flowers", "plant"),
    "ball": ("a ball", "toy"), "toy": ("a toy", ""),
    "instrument": ("a musical instrument", ""), "furniture": ("furniture", ""), "kitchen": ("something in a kitchen", ""),
    "device": ("a machine", ""), "clock": ("a clock", ""), "tool": ("a tool", ""), "thing": ("", ""),
}

# "first[-last] noun | group", one label range per line; later lines override earlier ones.
TABLE = """
0 fish | fish
1 goldfish | fish
2-4 shark | fish
5-6 ray | fish
7-8 chicken | bird
9 ostrich | bird
10-21 bird | bird
22 eagle | bird
23 vulture | bird
24 owl | bird
25-29 salamander | reptile
30-32 frog | reptile
33-37 turtle | reptile
38-48 lizard | reptile
49-50 crocodile | reptile
51 dinosaur | reptile
52-68 snake | reptile
69 trilobite | sea animal
70-77 spider | bug
71 scorpion | bug
78 tick | bug
79 centipede | bug
80-95 bird | bird
84 peacock | bird
87-90 parrot | bird
94 hummingbird | bird
96 toucan | bird
97-98 duck | bird
99 goose | bird
100 swan | bird
101 elephant | animal
102 echidna | animal
103 platypus | animal
104 kangaroo | animal
105 koala | animal
106 wombat | animal
107 jellyfish | sea animal
108 sea anemone | sea animal
109 coral | sea animal
110-111 worm | bug
112 seashell | sea animal
113 snail | bug
114 slug | bug
115-116 sea slug | sea animal
117 seashell | sea animal
118-121 crab | sea animal
122-123 lobster | sea animal
124 crayfish | sea animal
125 crab | sea animal
126 woodlouse | bug
127-128 stork | bird
129 spoonbill | bird
130 flamingo | bird
131-133 heron | bird
134-143 bird | bird
144 pelican | bird
145 penguin | bird
146 albatross | bird
147-148 whale | sea animal
149 dugong | sea animal
150 sea lion | sea animal
151-268 dog | dog
269-271 wolf | animal
272 coyote | animal
273-275 wild dog | animal
276 hyena | animal
277-280 fox | animal
281-285 cat | cat
286 cougar | big cat
287 lynx | big cat
288-289 leopard | big cat
290 jaguar | big cat
291 lion | big cat
292 tiger | big cat
293 cheetah | big cat
294-297 bear | animal
298 mongoose | animal
299 meerkat | animal
300-307 beetle | bug
301 ladybird | bug
308 fly | bug
309 bee | bug
310 ant | bug
311-312 grasshopper | bug
313 stick insect | bug
314 cockroach | bug
315 praying mantis | bug
316-318 insect | bug
319-320 dragonfly | bug
321-326 butterfly | bug
327 starfish | sea animal
328 sea urchin | sea animal
329 sea cucumber | sea animal
330-332 rabbit | animal
333 hamster | animal
334 porcupine | animal
335 squirrel | animal
336 marmot | animal
337 beaver | animal
338 guinea pig | animal
339 horse | animal
340 zebra | animal
341-343 pig | animal
344 hippo | animal
345 cow | animal
346-347 buffalo | animal
348 sheep | animal
349-350 goat | animal
351-353 antelope | animal
354 camel | animal
355 llama | animal
356-359 weasel | animal
360 otter | animal
361 skunk | animal
362 badger | animal
363 armadillo | animal
364 sloth | animal
365 orangutan | monkey
366 gorilla | monkey
367 chimpanzee | monkey
368-382 monkey | monkey
383-384 lemur | monkey
385-386 elephant | animal
387 red panda | animal
388 panda | animal
389-397 fish | fish
390 eel | fish
401 accordion | instrument
402 guitar | instrument
403 ship | boat
404 plane | aircraft
405 airship | aircraft
407 ambulance | car
408 boat | boat
409 clock | clock
410 beehive | thing
412 bin | thing
415 bakery | building
417 balloon | toy
420 banjo | instrument
423 chair | furniture
424 shop | building
425 barn | building
429 baseball | ball
430 basketball | ball
432 bassoon | instrument
435 bath | furniture
436 car | car
440 bottle | kitchen
441 glass | kitchen
444 bicycle | vehicle
449 boathouse | building
453 bookcase | furniture
454 bookshop | building
460 breakwater | shore
466 train | train
467 shop | building
468 taxi | car
469 cauldron | kitchen
470 candle | thing
472 canoe | boat
476 merry-go-round | toy
479 wheel | car
483 castle | building
484 boat | boat
486 cello | instrument
487 mobile phone | device
492 chest | furniture
493 chest of drawers | furniture
495 cabinet | furniture
497 church | building
498 cinema | building
504 mug | drink
505 coffeepot | kitchen
508 keyboard | device
509 sweet shop | building
510 ship | boat
511 car | car
516 cradle | furniture
517 crane | vehicle
518 helmet | clothes
520 cot | furniture
526 desk | furniture
527 computer | device
528 telephone | device
530 clock | clock
531 watch | clock
532 table | furniture
538 dome | building
541 drum | instrument
546 guitar | instrument
547 train | train
550 coffee machine | kitchen
554 fireboat | boat
555 fire engine | truck
558 flute | instrument
559 chair | furniture
560 helmet | clothes
561 forklift | truck
562 fountain | place
564 bed | furniture
565 train | train
566 horn | instrument
567 frying pan | kitchen
569 rubbish truck | truck
573 go-kart | car
574 golf ball | ball
576 gondola | boat
579 piano | instrument
580 greenhouse | building
582 shop | building
590 tablet | device
594 harp | instrument
595 harvester | truck
603 horse cart | vehicle
604 hourglass | clock
605 music player | device
607 pumpkin lantern | thing
609 car | car
611 jigsaw puzzle | toy
612 rickshaw | vehicle
620 laptop | device
621 lawn mower | tool
624 library | building
625 lifeboat | boat
627 car | car
628 ship | boat
649 standing stones | place
651 microwave | kitchen
654 bus | vehicle
656 car | car
657 rocket | aircraft
659 bowl | kitchen
660 caravan | vehicle
661 car | car
663 monastery | building
664 computer screen | device
665 motorbike | vehicle
668 mosque | building
670 scooter | vehicle
671 bicycle | vehicle
672 tent | place
673 computer mouse | device
675 van | truck
681 laptop | device
682 obelisk | place
687 organ | instrument
690 oxcart | vehicle
698 palace | building
699 pan pipes | instrument
703 bench | furniture
705 train | train
717 truck | truck
718 pier | shore
719 piggy bank | toy
721 pillow | furniture
722 ping-pong ball | ball
725 jug | kitchen
727 planetarium | building
732 camera | device
734 van | truck
738 potted plant | plant
743 prison | building
744 rocket | aircraft
750 quilt | furniture
751 racing car | car
757 camper van | vehicle
759 camera | device
760 fridge | kitchen
762 restaurant | building
765 rocking chair | furniture
768 rugby ball | ball
776 saxophone | instrument
779 school bus | vehicle
780 sailing ship | boat
788 shoe shop | building
802 snowmobile | vehicle
803 snowplough | truck
805 football | ball
809 bowl | kitchen
812 space shuttle | aircraft
814 speedboat | boat
817 car | car
820 steam train | train
821 bridge | place
822 steel drum | instrument
827 cooker | kitchen
829 tram | train
831 sofa | furniture
832 temple | building
833 submarine | boat
839 bridge | place
846 lamp | furniture
849 teapot | kitchen
850 teddy bear | toy
851 television | device
852 tennis ball | ball
853 cottage | building
857 throne | furniture
858 roof | building
859 toaster | kitchen
864 tow truck | truck
865 toy shop | building
866 tractor | truck
867 lorry | truck
870 tricycle | vehicle
871 boat | boat
874 trolleybus | vehicle
875 trombone | instrument
880 unicycle | vehicle
881 piano | instrument
889 violin | instrument
890 volleyball | ball
892 clock | clock
894 wardrobe | furniture
895 plane | aircraft
898 water bottle | kitchen
899 jug | kitchen
900 water tower | building
907 bottle | kitchen
909 wok | kitchen
910 wooden spoon | kitchen
913 shipwreck | boat
914 sailing boat | boat
915 yurt | building
919 street sign | place
920 traffic light | place
923 plate of food | food
924 guacamole | food
925 soup | food
926 stew | food
927 pudding | food
928 ice cream | food
929 ice lolly | food
930 bread | food
931 bagel | food
932 pretzel | food
933 burger | food
934 hot dog | food
935 mashed potato | food
936 cabbage | vegetable
937 broccoli | vegetable
938 cauliflower | vegetable
939 courgette | vegetable
940-942 squash | vegetable
943 cucumber | vegetable
944 artichoke | vegetable
945 pepper | vegetable
946 cardoon | vegetable
947 mushroom | vegetable
948 apple | fruit
949 strawberry | fruit
950 orange | fruit
951 lemon | fruit
952 fig | fruit
953 pineapple | fruit
954 banana | fruit
955 jackfruit | fruit
956 custard apple | fruit
957 pomegranate | fruit
958 hay | place
959 pasta | food
960 chocolate sauce | food
961 dough | food
962 meat loaf | food
963 pizza | food
964 pie | food
965 burrito | food
966 glass of wine | drink
967 cup of coffee | drink
968 cup | drink
969 drink | drink
970 mountain | landscape
971 bubble | thing
972 cliff | landscape
973 coral reef | sea animal
974 geyser | landscape
975 lake | shore
976 headland | shore
977 sandbank | shore
978 beach | shore
979 valley | landscape
980 volcano | landscape
981 ball player | person
982 bridegroom | person
983 diver | person
984 field | landscape
985 daisy | flower
986 orchid | flower
987 corn | vegetable
988 acorn | plant
989 rose hip | plant
990 conker | plant
991-997 mushroom | plant
998 corn | vegetable
999 toilet paper | thing
"""

# Things worn: a strong clothes label says a person is there, even when no face is seen.
CLOTHES = (399, 400, 411, 433, 439, 445, 451, 452, 457, 459, 465, 474, 501, 502, 514, 515, 552, 568, 578, 601,
           608, 610, 614, 617, 630, 638, 639, 643, 652, 655, 658, 667, 689, 697, 715, 735, 770, 774, 775, 793,
           796, 806, 808, 824, 834, 836, 837, 841, 842, 869, 887, 903, 906)


@dataclass(frozen=True)
class Label:
    index: int
    wnid: str
    lemma: str  # WordNet's first lemma: "tabby"
    noun: str  # what a child says: "cat"
    group: str  # key of GROUPS: "cat"


@functools.cache
def labels() -> tuple[Label, ...]:
    """The 1000 labels in model output order, with their nouns and groups."""
    rows = [line.split("\t") for line in resources.files("taleloom.assets").joinpath("imagenet/labels.tsv")
            .read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    nouns = {int(i): (lemmas.split(",")[0].strip().lower(), "thing") for i, _, lemmas in rows}
    for i in CLOTHES:
        nouns[i] = (nouns[i][0], "clothes")
    for line in TABLE.strip().splitlines():
        span, _, rest = line.partition(" ")
        noun, _, group = (s.strip() for s in rest.partition("|"))
        first, _, last = span.partition("-")
        for i in range(int(first), int(last or first) + 1):
            nouns[i] = (noun, group)
    out = tuple(Label(int(i), wnid, lemmas.split(",")[0].strip(), *nouns[int(i)]) for i, wnid, lemmas in rows)
    unknown = {lab.group for lab in out} - set(GROUPS)
    if len(out) != 1000 or unknown:
        raise RuntimeError(f"imagenet label table is broken: {len(out)} labels, unknown groups {unknown}")
    return out


def ancestry(group: str) -> list[str]:
    """The group and its parents, nearest first: 'cat' → ['cat', 'animal']."""
    chain = []
    while group:
        chain.append(group)
        group = GROUPS[group][1]
    return chain


@functools.cache
def _alive() -> dict[str, bool]:
    """Each noun and group word → whether it names a living creature (an animal or a person)."""
    out = {g: "animal" in ancestry(g) or g == "person" for g in GROUPS if g != "thing"}
    for lab in labels():
        out.setdefault(lab.noun, "animal" in ancestry(lab.group) or lab.group == "person")
    for lab in labels():  # a thing's own label too ("espresso"); not an animal's ("kite" is a bird there, a toy too)
        if "animal" not in ancestry(lab.group):
            out.setdefault(lab.lemma.lower(), lab.group == "person")
    return out


def is_creature(noun: str) -> bool | None:
    """Whether `noun` names an animal or a person (True) or a thing, food, place or plant (False), by the label
    table; None for a word it does not hold (another captioner's "giraffe" or "dragon"). The story's hero is the
    photo's subject, and a thing needs telling that it comes to life (write.py)."""
    words = noun.strip().lower()
    found = _alive().get(words)
    return found if found is not None or " " not in words else _alive().get(words.rsplit(" ", 1)[-1])


@functools.cache
def _landscapes() -> frozenset[str]:
    """The landscape group's own words, nouns and lemmas ("shore", "mountain", "lakeside")."""
    out = {g for g in GROUPS if "landscape" in ancestry(g)}
    for lab in labels():
        if "landscape" in ancestry(lab.group):
            out |= {lab.noun, lab.lemma.lower()}
    return frozenset(out)


def is_landscape(noun: str) -> bool:
    """Whether `noun` is the landscape group, one of its groups, or a noun or label of theirs ("shore", "lakeside")."""
    return noun.strip().lower() in _landscapes()


@functools.cache
def _animal_groups() -> dict[str, str]:
    """Each animal noun, label lemma and group word → its group ("stork" → bird, "hippo" → animal)."""
    out = {g: g for g in GROUPS if "animal" in ancestry(g)}
    for lab in labels():
        if "animal" in ancestry(lab.group):
            out.setdefault(lab.noun, lab.group)
            out.setdefault(lab.lemma.lower(), lab.group)
    return out


def animal_group(noun: str) -> str | None:
    """The group of an animal the label table names ("stork" → "bird", "cockroach" → "bug", "hippo" →
    "animal"), else None (a thing, a person, or a word it does not hold)."""
    return _animal_groups().get(noun.strip().lower())
