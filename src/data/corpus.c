// corpus: built-in children's stories from templates, and their 512-entry vocabulary.
//
// Templates are strings with two kinds of markup:
//   {name}     a slot of the current story (hero, pronouns, object, place, ...); a
//              capital first letter ({He}, {Hero}) capitalizes the value, and an
//              "a_" prefix ({a_obj}) puts "a"/"an" in front of it. Slot values
//              may themselves hold markup and are expanded in turn.
//   [x|y|z]    one alternative, picked uniformly (nestable).
// Each story picks its cast and props once, then one of eight story shapes
// writes three paragraphs and a moral. All choices come from one Rng.
#include "data/corpus.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"
#include "core/rng.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

// --- word lists ------------------------------------------------------------------------------

typedef struct { const char *name; int girl; } Kid;
static const Kid KIDS[] = {
    {"Lily", 1}, {"Mia", 1},  {"Anna", 1}, {"Lucy", 1}, {"Sue", 1},  {"Emma", 1}, {"Zoe", 1},   {"Ella", 1},
    {"Ruby", 1}, {"Kim", 1},  {"Rosa", 1}, {"Nina", 1}, {"Grace", 1}, {"Ava", 1}, {"Mila", 1},  {"Sara", 1},
    {"Lena", 1}, {"Daisy", 1}, {"Jane", 1}, {"Amy", 1}, {"Tim", 0},  {"Ben", 0},  {"Sam", 0},   {"Max", 0},
    {"Tom", 0},  {"Jack", 0}, {"Leo", 0},  {"Finn", 0}, {"Noah", 0}, {"Jake", 0}, {"Dan", 0},   {"Omar", 0},
    {"Ivan", 0}, {"Hugo", 0}, {"Eli", 0},  {"Theo", 0}, {"Kai", 0},  {"Owen", 0}, {"Bob", 0},   {"Joe", 0},
};

typedef struct { const char *noun, *sound; } Animal;  // sound: what it did when happy (past tense)
static const Animal ANIMALS[] = {
    {"dog", "barked"},       {"cat", "meowed"},       {"puppy", "yipped"},     {"kitten", "purred"},
    {"bird", "chirped"},     {"duck", "quacked"},     {"frog", "croaked"},     {"mouse", "squeaked"},
    {"owl", "hooted"},       {"pig", "oinked"},       {"cow", "mooed"},        {"horse", "neighed"},
    {"goat", "bleated"},     {"squirrel", "chattered"}, {"hen", "clucked"},    {"bunny", "thumped its feet"},
};
static const char *PET_NAMES[] = {"Spot",   "Fluffy", "Buddy", "Coco",  "Pip",    "Sunny", "Bella",  "Rex",
                                  "Mittens", "Hoppy", "Nibbles", "Bubbles", "Ginger", "Shadow", "Patch", "Pepper"};

typedef struct { const char *name, *at, *to; } Place;
static const Place PLACES[] = {
    {"park", "in the park", "to the park"},           {"garden", "in the garden", "to the garden"},
    {"forest", "in the forest", "into the forest"},   {"beach", "at the beach", "to the beach"},
    {"farm", "on the farm", "to the farm"},           {"pond", "by the pond", "to the pond"},
    {"hill", "on the big hill", "up the big hill"},   {"playground", "at the playground", "to the playground"},
    {"meadow", "in the meadow", "to the meadow"},     {"river", "by the river", "to the river"},
    {"zoo", "at the zoo", "to the zoo"},              {"lake", "by the lake", "to the lake"},
    {"backyard", "in the backyard", "out to the backyard"}, {"woods", "in the woods", "into the woods"},
    {"town square", "in the town square", "to the town square"}, {"library", "at the library", "to the library"},
};

static const char *ADJS[] = {"red",   "blue", "green", "yellow", "shiny", "soft",   "little", "big",
                             "old",   "new",  "pretty", "purple", "tiny",  "funny", "special", "orange"};
static const char *THINGS[] = {"ball",  "kite", "hat",   "toy car", "teddy bear", "rock",   "cup",      "book",
                               "drum",  "box",  "balloon", "shell", "key",        "boat",   "doll",     "crayon",
                               "blanket", "bell", "robot", "truck", "flower",     "scarf",  "train",    "bucket"};

static const char *TIMES[] = {"Once upon a time", "One day",         "One sunny morning",  "One rainy afternoon",
                              "Long ago",         "One cold winter day", "Last summer",    "One warm spring day",
                              "One bright Saturday"};
static const char *HAPPY[] = {"happy", "glad", "proud", "excited", "thankful", "cheerful"};
static const char *SAD[] = {"sad", "upset", "worried", "unhappy"};
static const char *SCARED[] = {"scared", "afraid", "nervous"};

typedef struct { const char *base, *past; } Act;
static const Act ACTS[] = {
    {"play tag", "played tag"},         {"build a fort", "built a fort"},     {"look for bugs", "looked for bugs"},
    {"play hide and seek", "played hide and seek"}, {"draw with chalk", "drew with chalk"},
    {"make mud pies", "made mud pies"}, {"race to the big tree", "raced to the big tree"},
    {"sing songs", "sang songs"},       {"play catch", "played catch"},       {"feed the ducks", "fed the ducks"},
};

// --- shape-specific tables (x1..x4 slots) ---------------------------------------------------

static const char *FEARS[][4] = {  // what, try (base), try (past, a sentence tail), how it went
    {"the tall slide", "go down the slide", "climbed up and went down the tall slide",
     "{He} went so fast that the wind blew in {his} hair"},
    {"the deep water", "jump into the pool", "held {his} nose and jumped into the pool",
     "The water was cool, and {he} splashed and kicked"},
    {"the dark", "sleep with the light off", "turned off the light and lay very still",
     "The room was quiet, and the shadows were just {his} toys"},
    {"the big waves", "walk into the sea", "walked slowly into the sea",
     "The little waves tickled {his} toes"},
    {"the loud thunder", "watch the storm", "looked out the window at the storm",
     "The rain danced on the street, and the sky flashed like a big light show"},
    {"the big dog next door", "pet the big dog", "reached out and petted the big dog",
     "The dog wagged its tail and licked {his} hand"},
    {"the high swing", "swing up high", "held on tight and swung up high",
     "{He} felt like {he} was flying like a bird"},
};

static const char *TROUBLES[][3] = {  // problem, fix, after
    {"had a hurt leg", "put a little bandage on its leg", "After a few days, the leg was all better"},
    {"was stuck in a thorny bush", "carefully pulled the branches apart and helped it out",
     "The {animal} was free at last"},
    {"was lost and could not find its mom", "helped it look for its mom",
     "Soon they found its mom [near a big tree|by the fence|under a bush]"},
    {"was cold and wet from the rain", "wrapped it in a warm blanket", "Soon the {animal} was warm and dry"},
    {"was very hungry", "gave it some [bread|berries|seeds|milk]", "The {animal} ate it all up"},
    {"was stuck in a deep hole", "got a long stick and helped it climb out", "The {animal} shook off the dirt"},
};

static const char *RULES[][3] = {  // warning, what the hero did, what happened
    {"Do not run near the pond. It is slippery.", "ran near the pond to look at the frogs",
     "{His} feet slipped, and {he} fell into the mud"},
    {"Do not eat too many cookies before dinner.", "ate five cookies when no one was looking",
     "Soon {he} had a big tummy ache"},
    {"Stay close to me at the market.", "wandered off to look at the [toys|balloons|fruit]",
     "When {he} turned around, {he} could not see {his} {parent}"},
    {"Do not play ball in the house.", "kicked {his} ball in the living room",
     "The ball hit a lamp, and the lamp fell down with a crash"},
    {"Put on your coat. It is cold outside.", "went outside without {his} coat",
     "{He} got very cold and started to sneeze"},
    {"Do not climb the tall fence.", "climbed the tall fence anyway",
     "{He} tore {his} pants and scraped {his} knee"},
};

static const char *PROJECTS[][4] = {  // goal, first try, advice, success
    {"build a tall tower of blocks", "{He} put block on block, but the tower fell down",
     "Put the big blocks at the bottom", "This time the tower stood tall and strong"},
    {"fly {his} new kite", "{He} ran with the kite, but it fell to the ground", "Run into the wind",
     "This time the kite went up, up, up into the sky"},
    {"build a big sandcastle", "{He} made a castle, but a wave washed it away", "Build it far from the water",
     "This time the castle stayed, and {he} put a shell on top"},
    {"ride {his} bike", "{He} wobbled and fell over", "Look ahead and keep pedaling",
     "This time {he} rode all the way down the street"},
    {"draw a picture of {a_animal}", "{His} first picture looked like a funny blob", "Start with a big circle",
     "This time the {animal} looked just right"},
    {"whistle a song", "{He} blew and blew, but only air came out", "Make your lips small and round",
     "This time a clear, happy whistle came out"},
    {"jump rope", "{He} tripped on the rope again and again", "Count and jump slowly",
     "This time {he} jumped ten times in a row"},
};

static const char *BREAKABLES[] = {"vase", "favorite cup", "blue plate", "lamp", "picture frame", "flower pot"};

// --- output buffer --------------------------------------------------------------------------

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : (size_t)1 << 16;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

// --- one story --------------------------------------------------------------------------------

typedef struct {
    Rng *r;
    Buf *b;
    int in_para;                // the current paragraph already has a sentence
    const Kid *hero, *pal;
    const char *parent;         // "mom" or "dad"
    int parent_girl, pet_girl;
    const Animal *animal;
    const char *pet;
    char obj[48];               // adjective + thing
    const char *thing;
    const Place *place;
    const char *happy, *sad, *scared, *time;
    const Act *act;
    const char *x[4];           // shape-specific strings
    const char *adv;            // who gives advice (a template)
} Story;

#define PICK(s, arr) ((arr)[rng_below((s)->r, N_OF(arr))])

static const char *pron(int girl, int which) {
    static const char *P[2][3] = {{"he", "his", "him"}, {"she", "her", "her"}};
    return P[girl ? 1 : 0][which];
}

// The value of slot `name` (lower-case), or NULL if there is no such slot.
static const char *slot_value(const Story *s, const char *name) {
    if (!strcmp(name, "hero")) return s->hero->name;
    if (!strcmp(name, "pal")) return s->pal->name;
    if (!strcmp(name, "kid")) return s->hero->girl ? "girl" : "boy";
    if (!strcmp(name, "pkid")) return s->pal->girl ? "girl" : "boy";
    if (!strcmp(name, "he")) return pron(s->hero->girl, 0);
    if (!strcmp(name, "his")) return pron(s->hero->girl, 1);
    if (!strcmp(name, "him")) return pron(s->hero->girl, 2);
    if (!strcmp(name, "phe")) return pron(s->pal->girl, 0);
    if (!strcmp(name, "phis")) return pron(s->pal->girl, 1);
    if (!strcmp(name, "phim")) return pron(s->pal->girl, 2);
    if (!strcmp(name, "mhe")) return pron(s->parent_girl, 0);
    if (!strcmp(name, "ahe")) return pron(s->pet_girl, 0);
    if (!strcmp(name, "ahis")) return pron(s->pet_girl, 1);
    if (!strcmp(name, "parent")) return s->parent;
    if (!strcmp(name, "animal")) return s->animal->noun;
    if (!strcmp(name, "sound")) return s->animal->sound;
    if (!strcmp(name, "pet")) return s->pet;
    if (!strcmp(name, "obj")) return s->obj;
    if (!strcmp(name, "thing")) return s->thing;
    if (!strcmp(name, "place")) return s->place->name;
    if (!strcmp(name, "at")) return s->place->at;
    if (!strcmp(name, "to")) return s->place->to;
    if (!strcmp(name, "happy")) return s->happy;
    if (!strcmp(name, "sad")) return s->sad;
    if (!strcmp(name, "scared")) return s->scared;
    if (!strcmp(name, "time")) return s->time;
    if (!strcmp(name, "act")) return s->act->base;
    if (!strcmp(name, "acted")) return s->act->past;
    if (!strcmp(name, "adv")) return s->adv;
    if (name[0] == 'x' && name[1] >= '1' && name[1] <= '4' && !name[2]) return s->x[name[1] - '1'];
    return NULL;
}

static void expand(Story *s, const char *t, size_t n);

static void expand_slot(Story *s, const char *name, size_t n) {
    char key[32];
    CHECK_OR_ABORT(n > 0 && n < sizeof key);  // templates are ours: a bad one is a bug
    memcpy(key, name, n);
    key[n] = '\0';
    int cap = isupper((unsigned char)key[0]);
    key[0] = (char)tolower((unsigned char)key[0]);
    int article = !strncmp(key, "a_", 2);
    const char *v = slot_value(s, article ? key + 2 : key);
    CHECK_OR_ABORT(v != NULL);
    size_t at = s->b->n;
    if (article) {
        // "an" before a vowel sound; our words never start with a silent or "you" vowel
        size_t vat = s->b->n;
        expand(s, v, strlen(v));
        char first = s->b->oom ? 'x' : (char)tolower((unsigned char)s->b->p[vat]);
        char word[256];
        size_t wn = s->b->n - vat;
        if (!s->b->oom && wn < sizeof word) {
            memcpy(word, s->b->p + vat, wn);
            s->b->n = vat;
            buf_put(s->b, strchr("aeiou", first) ? "an " : "a ", strchr("aeiou", first) ? 3 : 2);
            buf_put(s->b, word, wn);
        }
    } else {
        expand(s, v, strlen(v));
    }
    if (cap && !s->b->oom && s->b->n > at) s->b->p[at] = (char)toupper((unsigned char)s->b->p[at]);
}

// Expands template t[0..n).
static void expand(Story *s, const char *t, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (t[i] == '{') {
            size_t j = i + 1;
            while (j < n && t[j] != '}') j++;
            CHECK_OR_ABORT(j < n);
            expand_slot(s, t + i + 1, j - i - 1);
            i = j + 1;
        } else if (t[i] == '[') {
            // find the matching ']' and the top-level '|' separators
            size_t bars[32], nb = 0, j = i + 1;
            int depth = 0;
            for (; j < n; j++) {
                if (t[j] == '[') depth++;
                else if (t[j] == ']' && depth-- == 0) break;
                else if (t[j] == '|' && depth == 0) {
                    CHECK_OR_ABORT(nb < N_OF(bars));
                    bars[nb++] = j;
                }
            }
            CHECK_OR_ABORT(j < n);
            size_t k = (size_t)rng_below(s->r, nb + 1);
            size_t a = k == 0 ? i + 1 : bars[k - 1] + 1, z = k == nb ? j : bars[k];
            expand(s, t + a, z - a);
            i = j + 1;
        } else {
            size_t j = i;
            while (j < n && t[j] != '{' && t[j] != '[') j++;
            buf_put(s->b, t + i, j - i);
            i = j;
        }
    }
}

// One sentence (or several) in the current paragraph.
static void sent(Story *s, const char *t) {
    if (s->in_para) buf_put(s->b, " ", 1);
    expand(s, t, strlen(t));
    s->in_para = 1;
}

static void para(Story *s) {
    if (s->in_para) buf_put(s->b, "\n", 1);
    s->in_para = 0;
}

static void moral(Story *s, const char *lesson) {
    sent(s, "[The moral of the story is that|{Hero} learned that|That day, {hero} learned that|"
            "And so {hero} learned that|From that day on, {hero} knew that]");
    sent(s, lesson);
}

// The first sentence. `trip` allows "{hero} went to the {place}" openings, for
// shapes whose story may happen anywhere.
static void intro(Story *s, int trip) {
    if (trip && rng_below(s->r, 3) == 0) {
        sent(s, "{time}, {hero} [went|walked] {to} with {his} {parent}.");
        return;
    }
    sent(s, "[Once upon a time|Long ago|Not long ago|A long time ago], [there was a [little|young|kind|curious|"
            "happy] {kid} named {hero}.|a [little|young] {kid} named {hero} lived in a [small|little|cozy|yellow] "
            "house [near the woods|by the sea|in a quiet town|on a busy street|next to a big park].]");
}

// --- the eight shapes -----------------------------------------------------------------------

static void shape_lost(Story *s) {
    intro(s, 1);
    sent(s, "{Hero} had {a_obj}. [{He} loved it very much.|It was {his} favorite toy.|"
            "{He} took it everywhere {he} went.]");
    sent(s, "[One day|One morning|After lunch], {hero} took the {thing} {to} to play.");
    sent(s, "{He} played with it [all morning|for a long time|until the sun was low].");
    para(s);
    sent(s, "When it was time to go home, {hero} could not find {his} {thing}. {He} looked "
            "[under the bench|behind a tree|in the grass|everywhere], but it was gone. {Hero} felt very {sad}.");
    if (rng_below(s->r, 2)) {
        sent(s, "Then a [friendly|little|kind] {animal} named {pet} came by. \"[Why are you {sad}|What is wrong|"
                "Why do you look so {sad}]?\" asked {pet}.");
        s->adv = "{pet}";
    } else {
        sent(s, "Then {hero}'s friend {pal} came by. \"[What is wrong|Why are you {sad}], {hero}?\" asked {pal}.");
        s->adv = "{pal}";
    }
    sent(s, "\"I lost my {obj},\" said {hero}. \"[Can you help me find it?|I cannot find it anywhere.]\"");
    para(s);
    sent(s, "{Adv} said, \"[Let's look together!|I will help you!|Do not worry, we will find it.]\"");
    sent(s, "They looked [near the pond|under the slide|behind the big rock|in the tall grass]. "
            "[At last|Soon|After a while], {adv} [found|saw] the {thing} "
            "[under a bush|behind a rock|next to a tree|in a pile of leaves]!");
    sent(s, "{Hero} [hugged|thanked] {adv}. \"Thank you, {adv}! You are a good friend,\" {he} said. "
            "{Hero} was so {happy}.");
    moral(s, "[friends help each other.|it is good to ask for help.|you should never give up when you look "
             "for something.]");
}

static void shape_share(Story *s) {
    sent(s, "{time}, {hero} and {pal} were playing {at}.");
    sent(s, "[{Hero} had {a_obj}.|{Hero} found {a_obj} on the ground.|{Hero}'s {parent} had given {him} {a_obj}.]");
    sent(s, "{Pal} wanted to play with the {thing} too. \"[Can I play with it?|May I have a turn?|Can I try?]\" "
            "asked {pal}. \"No, it is mine!\" said {hero}. {Pal} felt {sad} and "
            "[started to cry|walked away|sat down alone].");
    para(s);
    sent(s, "{Hero}'s {parent} saw what happened. {Mhe} said, \"{hero}, [it is kind to share|sharing is nice|"
            "good friends share their toys]. [How would you feel if {pal} did not share with you?|"
            "You can take turns.]\"");
    sent(s, "{Hero} thought about it. {He} did not want {pal} to be {sad}. {He} gave the {thing} to {pal} and "
            "said, \"[Here, you can have a turn.|Let's play with it together.|I am sorry. We can share.]\"");
    para(s);
    sent(s, "{Pal} smiled. They [took turns with the {thing}|played together] "
            "[all afternoon|until dinner time|for the rest of the day]. "
            "[They both felt {happy}.|They laughed and had a great time.]");
    moral(s, "[sharing makes everyone happy.|it is more fun to play together.|good friends share.]");
}

static void shape_brave(Story *s) {
    const char *const *f = FEARS[rng_below(s->r, N_OF(FEARS))];
    s->x[0] = f[0], s->x[1] = f[1], s->x[2] = f[2], s->x[3] = f[3];
    intro(s, 1);
    sent(s, "{Hero} was [scared|afraid] of {x1}. [Every time {he} saw it, {he} [hid behind {his} {parent}|ran away|"
            "closed {his} eyes].|{He} did not want to go near it.]");
    para(s);
    sent(s, "One day, {pal} said, \"[Come on, {hero}!|Let's {x2}, {hero}!] [You can do it!|It is fun, you will "
            "see!]\" But {hero} [shook {his} head.|said, \"I am too {scared}.\"]");
    sent(s, "{Pal} held {hero}'s hand. \"[I will be right here with you.|We can do it together.|"
            "Just try one time.]\"");
    para(s);
    sent(s, "{Hero} took a deep breath. {He} {x3}. {X4}! {Hero} [laughed|smiled|cheered]. "
            "\"[That was fun!|I did it!|I am not {scared} anymore!]\" {he} said.");
    moral(s, "[being brave means trying even when you are {scared}.|a good friend can help you be brave.|"
             "things are often less scary when you try them.]");
}

static void shape_help(Story *s) {
    const char *const *t = TROUBLES[rng_below(s->r, N_OF(TROUBLES))];
    s->x[0] = t[0], s->x[1] = t[1], s->x[2] = t[2];
    intro(s, 0);
    sent(s, "[One day|One morning|One evening], {hero} was [walking|playing] {at} when {he} heard a "
            "[small|soft|sad] sound. It was a little {animal}! The {animal} {x1}.");
    para(s);
    sent(s, "\"[Oh no!|Poor little {animal}!|Don't worry, little {animal},]\" said {hero}. "
            "\"[I will help you.|Let me help you.]\"");
    sent(s, "{Hero} {x2}. [{His} {parent} came to help too.|{He} was very careful.]");
    para(s);
    sent(s, "{X3}. The {animal} {sound} [happily|with joy] and [jumped up and down|looked at {hero} with bright "
            "eyes|stayed close to {hero}].");
    sent(s, "[After that|From then on|Every day after that], the {animal} came to visit {hero}. "
            "{He} named it {pet}. [They became the best of friends.|{Hero} felt {happy} inside.]");
    moral(s, "[being kind to animals is important.|a small kind act can make a big friend.|"
             "we should always help those in need.]");
}

static void shape_listen(Story *s) {
    const char *const *r = RULES[rng_below(s->r, N_OF(RULES))];
    s->x[0] = r[0], s->x[1] = r[1], s->x[2] = r[2];
    intro(s, 0);
    sent(s, "{Hero}'s {parent} said, \"{x1}\"");
    sent(s, "But {hero} did not listen. {He} wanted to have fun. {He} {x2}.");
    para(s);
    sent(s, "[Oh no!|Uh oh!] {X3}. {He} [began to cry|felt very {sad}|called for {his} {parent}].");
    sent(s, "{His} {parent} [came quickly|ran to {him}] and [helped {him}|gave {him} a big hug].");
    para(s);
    sent(s, "\"I am sorry, {Parent},\" said {hero}. \"I should have listened to you.\" {His} {parent} smiled. "
            "\"[I am glad you are okay.|It is okay. Now you know why I said that.]\"");
    moral(s, "[it is important to listen to your {parent}.|rules are there to keep us safe.]");
}

static void shape_try(Story *s) {
    const char *const *p = PROJECTS[rng_below(s->r, N_OF(PROJECTS))];
    s->x[0] = p[0], s->x[1] = p[1], s->x[2] = p[2], s->x[3] = p[3];
    s->adv = rng_below(s->r, 2) ? "{pal}" : "{his} {parent}";
    intro(s, 1);
    sent(s, "{Hero} wanted to {x1}. {X2}. {Hero} felt {sad}. \"[I can't do it|This is too hard],\" {he} said.");
    para(s);
    sent(s, "{Adv} [came over|sat next to {him}]. \"[Do not give up.|Try again.|Everyone needs practice.] "
            "{x3},\" [said {adv}|{adv} said].");
    para(s);
    sent(s, "{Hero} tried again. {X4}! {Hero} [jumped up and down|clapped {his} hands|smiled from ear to ear]. "
            "\"I did it!\" {he} [said|shouted].");
    moral(s, "[practice makes things easier.|you should never give up.|trying again is how we learn.]");
}

static void shape_friend(Story *s) {
    sent(s, "{time}, {hero} was {at} all alone. {He} felt lonely. "
            "[{He} wanted someone to play with.|{He} did not know anyone there.]");
    para(s);
    sent(s, "Then {hero} saw a {pkid} named {pal} [sitting on a bench|playing with {a_obj}|looking at the birds].");
    sent(s, "[{Hero} was shy, but {he}|{Hero} took a deep breath and] walked over. \"Hi, I am {hero}. "
            "[Do you want to play?|Can I play with you?|What are you doing?]\"");
    sent(s, "{Pal} smiled. \"[Yes|Sure|Okay]! [Let's {act} together.|I was hoping someone would come.]\"");
    para(s);
    sent(s, "They {acted} [all afternoon|until the sun went down|for a long time]. {Hero} was not lonely anymore. "
            "[From that day on, {hero} and {pal} were best friends.|They promised to play again the next day.]");
    moral(s, "[saying hello can help you make a new friend.|it is good to be brave and kind to new people.]");
}

static void shape_truth(Story *s) {
    s->x[0] = PICK(s, BREAKABLES);
    intro(s, 0);
    sent(s, "{Hero} was playing with {his} {obj} in the [living room|kitchen|hall]. {He} [threw|bounced|swung] "
            "it [too high|too hard], and it hit {his} {parent}'s {x1}. The {x1} fell and broke into pieces!");
    sent(s, "{Hero} was {scared}. {He} [hid the pieces under the couch|swept the pieces into a corner|"
            "put the pieces in a box] and did not say a word.");
    para(s);
    sent(s, "Later, {his} {parent} [looked for|asked about] the {x1}. \"[Do you know what happened to my {x1}?|"
            "Have you seen my {x1}?]\" {mhe} asked. {Hero} [felt a knot in {his} tummy|did not know what to say].");
    sent(s, "{He} did not want to lie. [At last|Then], {hero} said, \"I am sorry, {Parent}. I broke it. "
            "[It was an accident.|I was playing, and it fell.]\"");
    para(s);
    sent(s, "{His} {parent} gave {him} a hug. \"Thank you for telling me the truth,\" {mhe} said. "
            "\"[We can fix it together.|Things can be fixed, but trust is important.|I am proud of you for being "
            "honest.]\" {Hero} felt [much better|happy again|calm again].");
    moral(s, "[telling the truth is always best.|it is better to be honest, even when it is hard.]");
}

static void (*const SHAPES[])(Story *) = {shape_lost,   shape_share, shape_brave,  shape_help,
                                          shape_listen, shape_try,   shape_friend, shape_truth};

static void story(Rng *r, Buf *b) {
    Story s = {.r = r, .b = b};
    s.hero = &KIDS[rng_below(r, N_OF(KIDS))];
    do s.pal = &KIDS[rng_below(r, N_OF(KIDS))];
    while (s.pal == s.hero);
    s.parent_girl = (int)rng_below(r, 2);
    s.parent = s.parent_girl ? "mom" : "dad";
    s.animal = &PICK(&s, ANIMALS);
    s.pet = PICK(&s, PET_NAMES);
    s.pet_girl = (int)rng_below(r, 2);
    s.thing = PICK(&s, THINGS);
    snprintf(s.obj, sizeof s.obj, "%s %s", PICK(&s, ADJS), s.thing);
    s.place = &PICK(&s, PLACES);
    s.happy = PICK(&s, HAPPY);
    s.sad = PICK(&s, SAD);
    s.scared = PICK(&s, SCARED);
    s.time = PICK(&s, TIMES);
    s.act = &PICK(&s, ACTS);
    s.adv = "{pal}";
    SHAPES[rng_below(r, N_OF(SHAPES))](&s);
    buf_put(b, "\n" CORPUS_EOT "\n", strlen(CORPUS_EOT) + 2);
}

int corpus_generate(uint64_t seed, int n_stories, char **text, size_t *len) {
    *text = NULL;
    if (len) *len = 0;
    if (n_stories < 0) return err_set("corpus: n_stories %d must be >= 0", n_stories);
    Rng r;
    rng_init(&r, seed);
    Buf b = {0};
    buf_put(&b, "", 0);  // an empty corpus is still a valid empty string
    for (int i = 0; i < n_stories && !b.oom; i++) story(&r, &b);
    if (b.oom) {
        free(b.p);
        return err_set("corpus: out of memory generating %d stories", n_stories);
    }
    *text = b.p;
    if (len) *len = b.n;
    return 0;
}

// --- the vocabulary: a small BPE over the sample --------------------------------------------
// Encode (tokenizer.c, run.c) prepends a space to each document and merges the
// strings of adjacent tokens. Since no piece may hold a space except first, nor a
// "\n", a document splits into independent segments: a '\n' alone, or an optional
// leading space plus the run of other bytes after it. BPE then runs on the unique
// segments weighted by their counts, which is exactly the whole-text BPE.

enum { MAXSYM = CORPUS_VOCAB };  // symbols: characters then merges (<= 253 in all)

typedef struct {
    const char *p;
    int n;
} Seg;

static int seg_cmp(const void *a, const void *b) {
    const Seg *x = a, *y = b;
    int c = memcmp(x->p, y->p, (size_t)(x->n < y->n ? x->n : y->n));
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

typedef struct {
    int *sym;    // current symbols of this unique segment
    int n;       // number of symbols
    long count;  // occurrences in the sample
} Word;

typedef struct {
    char str[MAXSYM][CORPUS_PIECE_MAX + 1];
    int len[MAXSYM];
    int n;
} Symbols;

static int sym_find(const Symbols *S, const char *s, int n) {
    for (int i = 0; i < S->n; i++)
        if (S->len[i] == n && !memcmp(S->str[i], s, (size_t)n)) return i;
    return -1;
}

// Collects every segment of the sample (with each story's dummy-prefix space).
static int collect_segments(const char *text, size_t len, Seg **out, size_t *n_out, char **prefixed) {
    // Rebuild the documents as encode sees them: " " + stripped story, one after another.
    size_t cap = len + 1;
    char *doc = malloc(cap * 2 + 16);
    Seg *segs = malloc(sizeof(Seg) * (len + 1));
    if (!doc || !segs) {
        free(doc), free(segs);
        return err_set("corpus: out of memory building the vocabulary");
    }
    size_t dn = 0, ns = 0;
    const char *eot = "\n" CORPUS_EOT "\n";
    const size_t eotn = strlen(eot);
    for (size_t i = 0; i < len;) {
        const char *end = strstr(text + i, eot);
        size_t e = end ? (size_t)(end - text) : len;
        size_t a = i, z = e;
        while (a < z && isspace((unsigned char)text[a])) a++;
        while (z > a && isspace((unsigned char)text[z - 1])) z--;
        if (z > a) {
            size_t d0 = dn;
            doc[dn++] = ' ';
            memcpy(doc + dn, text + a, z - a);
            dn += z - a;
            for (size_t k = d0; k < dn;) {
                size_t j = k + 1;
                if (doc[k] != '\n')
                    while (j < dn && doc[j] != ' ' && doc[j] != '\n') j++;
                segs[ns++] = (Seg){doc + k, (int)(j - k)};
                k = j;
            }
        }
        i = end ? e + eotn : len;
    }
    *out = segs;
    *n_out = ns;
    *prefixed = doc;
    return 0;
}

int corpus_vocab(CorpusVocab *v) {
    memset(v, 0, sizeof *v);
    char *text = NULL, *doc = NULL;
    size_t len = 0, ns = 0;
    Seg *segs = NULL;
    Word *words = NULL;
    uint32_t *pairs = NULL;
    Symbols *S = calloc(1, sizeof *S);
    int rc = -1, nw = 0, *symbuf = NULL;
    if (!S) return err_set("corpus: out of memory building the vocabulary");
    if (corpus_generate(CORPUS_VOCAB_SEED, CORPUS_VOCAB_STORIES, &text, &len) != 0) goto done;
    if (collect_segments(text, len, &segs, &ns, &doc) != 0) goto done;

    // characters, most frequent first (ties: lower byte first)
    long freq[256] = {0};
    for (size_t i = 0; i < ns; i++)
        for (int k = 0; k < segs[i].n; k++) freq[(unsigned char)segs[i].p[k]]++;
    int order[256], nchar = 0;
    for (int c = 0; c < 256; c++)
        if (freq[c]) order[nchar++] = c;
    for (int i = 1; i < nchar; i++)  // insertion sort: stable, tiny
        for (int j = i; j > 0 && freq[order[j]] > freq[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    const int slots = CORPUS_VOCAB - 259;  // after <unk>, BOS, EOS and the 256 byte pieces
    if (nchar > slots) {
        err_set("corpus: %d distinct characters do not fit in %d vocabulary slots", nchar, slots);
        goto done;
    }
    int sym_of_byte[256];
    for (int i = 0; i < nchar; i++) {
        S->str[i][0] = (char)order[i];
        S->len[i] = 1;
        sym_of_byte[order[i]] = i;
    }
    S->n = nchar;

    // unique segments with counts
    qsort(segs, ns, sizeof(Seg), seg_cmp);
    words = malloc(sizeof(Word) * (ns + 1));
    symbuf = malloc(sizeof(int) * (len + ns + 1));
    pairs = malloc(sizeof(uint32_t) * MAXSYM * MAXSYM);
    if (!words || !symbuf || !pairs) {
        err_set("corpus: out of memory building the vocabulary");
        goto done;
    }
    size_t used = 0;
    for (size_t i = 0; i < ns;) {
        size_t j = i + 1;
        while (j < ns && seg_cmp(&segs[i], &segs[j]) == 0) j++;
        Word *w = &words[nw++];
        w->sym = symbuf + used;
        w->n = segs[i].n;
        w->count = (long)(j - i);
        for (int k = 0; k < w->n; k++) w->sym[k] = sym_of_byte[(unsigned char)segs[i].p[k]];
        used += (size_t)w->n;
        i = j;
    }

    // greedy merges until the slots are full
    int merges[MAXSYM], nmerge = 0;
    while (nchar + nmerge < slots) {
        memset(pairs, 0, sizeof(uint32_t) * MAXSYM * MAXSYM);
        for (int i = 0; i < nw; i++)
            for (int k = 0; k + 1 < words[i].n; k++) {
                int a = words[i].sym[k], b = words[i].sym[k + 1];
                if (S->len[a] + S->len[b] <= CORPUS_PIECE_MAX) pairs[a * MAXSYM + b] += (uint32_t)words[i].count;
            }
        uint32_t best = 0;
        int ba = -1, bb = -1;
        for (int a = 0; a < S->n; a++)
            for (int b = 0; b < S->n; b++)
                if (pairs[a * MAXSYM + b] > best) best = pairs[a * MAXSYM + b], ba = a, bb = b;
        if (best < 2) break;  // nothing left worth a piece
        char cat[2 * CORPUS_PIECE_MAX + 1];
        int cn = S->len[ba] + S->len[bb];
        memcpy(cat, S->str[ba], (size_t)S->len[ba]);
        memcpy(cat + S->len[ba], S->str[bb], (size_t)S->len[bb]);
        int c = sym_find(S, cat, cn);
        if (c < 0) {  // a new piece (the same string from another split reuses the old one)
            c = S->n++;
            memcpy(S->str[c], cat, (size_t)cn);
            S->str[c][cn] = '\0';
            S->len[c] = cn;
            merges[nmerge++] = c;
        }
        for (int i = 0; i < nw; i++) {  // apply left to right, non-overlapping
            Word *w = &words[i];
            int o = 0;
            for (int k = 0; k < w->n; k++) {
                if (k + 1 < w->n && w->sym[k] == ba && w->sym[k + 1] == bb) {
                    w->sym[o++] = c;
                    k++;
                } else {
                    w->sym[o++] = w->sym[k];
                }
            }
            w->n = o;
        }
    }

    // lay out the vocabulary (see corpus.h)
    v->n = CORPUS_VOCAB;
    int id = 0;
    snprintf(v->piece[id++], sizeof v->piece[0], "<unk>");
    snprintf(v->piece[id++], sizeof v->piece[0], "\n<s>\n");
    snprintf(v->piece[id++], sizeof v->piece[0], "\n</s>\n");
    for (int byte = 0; byte < 256; byte++) snprintf(v->piece[id++], sizeof v->piece[0], "<0x%02X>", byte);
    int rank = 0;
    for (int m = 0; m < nmerge; m++, id++, rank++) {
        memcpy(v->piece[id], S->str[merges[m]], (size_t)S->len[merges[m]] + 1);
        v->score[id] = -(float)rank;  // -0.0 first, as tok512.bin has it
    }
    v->n_merges = nmerge;
    for (int i = 0; i < nchar; i++, id++, rank++) {
        memcpy(v->piece[id], S->str[i], 2);
        v->score[id] = -(float)rank;
    }
    // Unused slots (only if the sample ran out of repeated pairs): pieces no text can form,
    // since '<' is never a piece of its own here and byte tokens do not merge.
    for (int k = 0; id < CORPUS_VOCAB; id++, k++, rank++) {
        snprintf(v->piece[id], sizeof v->piece[0], "<unused%d>", k);
        v->score[id] = -(float)rank;
    }
    for (int i = 0; i < CORPUS_VOCAB; i++) {
        v->len[i] = (int)strlen(v->piece[i]);
        if (v->len[i] > v->max_len) v->max_len = v->len[i];
    }
    rc = 0;
done:
    free(text), free(doc), free(segs), free(words), free(symbuf), free(pairs), free(S);
    return rc;
}

int corpus_write_tokenizer(const char *path) {
    CorpusVocab *v = malloc(sizeof *v);
    if (!v) return err_set("%s: out of memory", path);
    if (corpus_vocab(v) != 0) {
        free(v);
        return err_wrap("%s", path);
    }
    AtomicFile af;
    if (io_atomic_open(&af, path) != 0) {
        free(v);
        return -1;
    }
    uint8_t h[8];
    uint32_t mx = (uint32_t)v->max_len;
    for (int b = 0; b < 4; b++) h[b] = (uint8_t)(mx >> (8 * b));
    io_atomic_write(&af, h, 4);
    for (int i = 0; i < v->n; i++) {
        uint32_t bits, n = (uint32_t)v->len[i];
        memcpy(&bits, &v->score[i], 4);
        for (int b = 0; b < 4; b++) h[b] = (uint8_t)(bits >> (8 * b)), h[4 + b] = (uint8_t)(n >> (8 * b));
        io_atomic_write(&af, h, 8);
        io_atomic_write(&af, v->piece[i], n);
    }
    free(v);
    if (af.failed) {
        io_atomic_abort(&af);
        return -1;
    }
    return io_atomic_commit(&af);
}
