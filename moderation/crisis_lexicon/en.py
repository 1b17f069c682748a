# ruff: noqa: E501  (lexicon data: one pattern per line reads better than wrapped strings)
"""English crisis-language lexicon (pattern syntax: moderation.crisis.compile_pattern)."""

LANG = "en"

_I = "[i|i'm|im|i_am|i've|ive|i_have|i'd|id|i'll|il|just|really|honestly|so|sometimes|often|still|literally]"
_WANT = (
    "want|wanna|wana|wish|need|going_to|gonna|ready_to|trying_to|plan_to|planning_to|decided_to|about_to|will|i'll|il"
)
_MYSELF = "myself|myslef|meself|my_self"

LEXICON: dict[str, tuple[str, ...]] = {
    "ideation": (
        f"{_I} want|wanna|wana|wish [to] die|be_dead|not_exist|stop_existing|disappear_forever",
        "wish i|i'd was|were|could dead|die|disappear|not_exist|sleep_forever|not_wake_up|never_wake_up",
        "wish i wasn't|wasnt|weren't|werent alive|here|born|around",
        "wish i'd|id|i_had never been born|existed|woken_up",
        "don't|dont|do_not|no_longer want|wanna [to] live|be_alive|be_here|exist|wake_up|go_on [anymore]",
        "don't|dont|do_not see|have [a|any] reason|point to live|go_on|keep_going|be_alive",
        "no|nothing|no_reason|no_point to|in|left_to live|living|live_for|go_on",
        "no|any|a reason|point [for_me|for_me_to|anymore] to live|go_on|keep_going|stay|stay_alive|be_alive|be_here",
        "nothing [left] to live for",
        "life|it|living is_not|isn't|isnt|ain't|aint|is_no_longer|feels_not worth living|it|anything",
        "not worth living",
        "don't|dont deserve to live|be_alive",
        "better off dead",
        "rather be dead",
        "why am_i|do_i still alive|here|exist",
        "hope i don't|dont|never|won't|wont wake up",
        "wish|wishing|hope|hoping i wouldn't|wouldnt|won't|wont|didn't|didnt|don't|dont|never wake up",
        "hope|hoping i die|get_hit_by|get_run_over|crash|don't_make_it|dont_make_it",
        "sleep and never|not wake up",
        "tired|sick of living|being_alive|existing|life",
        "i'm|im|i_am|i've_been|ive_been|feel|feeling|felt|been|so|very|really|getting|get|am suicidal|suicdal|sucidal|suisidal",
        "having|have|had|got|get|getting suicidal thoughts|thoughts_of_suicide|ideation|urges|feelings",
        "thinking|think|thought|thoughts about|of suicide|dying|death|not_being_here|ending_it",
        "sewerslide|sewer_slide|sewerslided|sewersliding",
        f"!{_I} want|wanna|wana|wish|need [to] kil|end|unalive {_MYSELF}|my_life|it_al",
        f"!thinking|think|thought|thoughts about|of kiling|ending|taking {_MYSELF}|my_life|my_own_life|it_all",
        "want|wanna [to] disappear",
        "death would be|sounds|feels a relief|peaceful|easier|better",
        "can't|cant|cannot wait to die|be_dead",
        "deserve to die|be_dead|to_disappear",
        "[i'd|id|i_would] rather not be alive|be_here|exist|live|wake_up|be_born",
        "wish|want|wanna|could|need [to] [just] stop existing|living|being_alive|being_here",
        "want|wanna|need out of this|my life",
        "nothing matters anymore",
        "want|wanna|wish|like|need [to] [go_to|just] sleep forever|and_never_wake_up|and_not_wake_up",
    ),
    "hopelessness": (
        "i'm|im|i_am|i_feel|feel|feeling|felt|i've_been|so|completely|totally|utterly hopeless",
        "i'm|im|i_am|feel_like|i_feel_like [just|such|only] a burden",
        "burden to|on everyone|everybody|my_family|my_friends|them|others",
        "better off without me",
        "everyone|everybody|they|world would|will be [so] better|happier without me",
        "better|happier|easier|lighter if|when i was|were|am|i'm|im|i'd|id gone|dead|not_here|not_around|no_longer_here|never_born",
        "no way out",
        "there's|theres|there_is no hope|point|way_out [left]",
        "lost|losing all hope",
        "no hope left",
        "done with life|living|everything|it_all|being_alive|existing",
        "can't|cant|cannot|don't|dont see|have [a|any] future",
        "no future for me",
        "nothing|there's_nothing|theres_nothing|there_is_nothing left for me",
        "hate being alive|existing|being_here",
        "give|gave|giving|given up on life|living|everything|myself",
        "can't|cant|cannot keep living|go_on_living|live_like_this|live_this_way|live_anymore",
        "can't|cant|cannot go on|take_it_anymore|take_this_anymore|keep_going|do_this_anymore|cope_anymore|handle_it_anymore|keep_doing_this",
        "life is|feels pointless|meaningless|hopeless",
        "what's|whats|what_is the point of living|of_anything|of_going_on|in_living",
        "nobody|no_one|noone would|will|wouldn't|wouldnt [even|really|ever|actually] care|notice|mind|miss_me if|when i died|was_gone|disappeared|were_gone|killed_myself|was_dead|wasn't_here|weren't_here",
        "nobody|no_one|noone would|will miss me",
    ),
    "intent": (
        f"kil|kiling|unalive {_MYSELF}",
        "kms|kys_myself",
        "end|ending my life|it_all|everything|things",
        "plan|planning|going|gonna|want|wanna|ready|decided|trying|need to end it [all|tonight|now|soon|today]",
        "should|could|might|will|i'll|il|gonna [i] just end it [all]",
        "take|taking my own life",
        "take|taking my life",
        "commit|comit|commiting|commit_suicide suicide|suicde|sucide",
        "going_to|gonna|will|i'll|il|want_to|wanna|plan_to|planning_to|decided_to|ready_to do it tonight",
        "i'm|im|i_am ready to die|go",
        "tonight is|tonight's|tonights the night",
        "i've|ive|have made|made_up my|up mind to die|to_end|to_kill",
        "won't|wont be here|alive|around tomorrow|next_week|much_longer|for_long|anymore",
        "won't|wont|will_not|will_no_longer be a problem|burden|bother|nuisance for|to anyone|anybody|everyone|you|them|my_family",
        "not going to|gonna be here|be_around|be_alive|make_it tomorrow|much_longer|next_week",
    ),
    "plan": (
        "have|got|made|making|make|written|wrote a plan [to|for] die|dying|end|suicide|kil|it|how",
        "suicide plan",
        "planning|planned|plan|preparing my suicide|death|exit|own_death",
        "picked|set|chose|chosen|choose|decided a|the date|day|time|place to|when|for die|end|it|kil",
        "i|i've|ive|i_have have|got|made a plan .. picked|set|chosen|chose the|a date|day|time|place",
        "planned|planning how|when|where [to|i'l|i_will|i] die|do_it|end_it|kil",
        "researching|researched|looked_up|looking_up|googled|googling how to die|kil|end|overdose|hang",
        "how to kil|end|hang|overdose|unalive myself|my_life|without_pain|painlessly",
        "painless|painlesly|easiest|quickest|best way|ways|method|methods to die|kil|suicide|end_it",
        "which|what bridge|bridges|building|buildings|cliff|cliffs|roof|floor|floors .. highest|tallest|high_enough|tall_enough|lethal",
    ),
    "method": (
        "hang|hanging|hung myself",
        "yeet|yeeting myself off|of|from .. roof|rooftop|bridge|building|cliff|balcony|window",
        "noose|nose",
        "tie|tied|tying|make|made|bought|buy|have a rope|noose|nose",
        "overdose|overdosing|od|od'ing|oding on|with my|all|the|these|those|pills|pils|meds|tablets|sleeping|insulin|paracetamol|tylenol|acetaminophen|painkillers",
        "i|i'm|im|i'l|il|gonna|going_to|want_to|wanna|will|could|should|to|just overdose|od",
        "take|took|taking|swallow|swallowed|swallowing|down|downed|downing|eat|ate all|the_whole|every|a_whole .. pills|pils|meds|tablets|medication|medicine|bottle|packet|box",
        "how many pills|pils|tablets|meds .. to|would|will|does|it die|kil|overdose|od|be_lethal|lethal|fatal|take",
        "lethal|fatal|deadly|toxic dose|amount|overdose",
        "stockpile|stockpiling|stockpiled|hoard|hoarding|hoarded|saving|saved|collecting|collected [up] [my|the|some|enough] pills|meds|tablets|medication|painkillers",
        "jump|jumping|throw_myself|throw_myself_off off|from|of .. bridge|roof|rooftop|building|cliff|balcony|tower|overpass|window|car_park",
        "jump|jumping|step|stepping|walk|walking|throw_myself in|into|under|in_front_of|infront_of [a|the] train|traffic|bus|truck|lorry|car|cars|subway",
        "slit|slash|slashing|cut|cutting|open my|both wrists|wrist|veins|throat",
        "shoot|shooting|shot myself",
        "gun to my head",
        "buy|bought|get|got|borrow a gun .. myself|end|die",
        "drown|drowning|poison|poisoning|gas|gassing|starve|starving myself",
        "drink|drinking|drank|swallow bleach|antifreeze|poison",
        "crash|drive my car into|off|on_purpose|deliberately",
        "driving|drive|swerving|swerve|crashing|crash off the road|a_cliff|into_a_tree|into_a_wall|into_oncoming_traffic",
    ),
    "self_harm": (
        "cut|cuting|cuts|cutting|burn|burning|burnt|burned|hit|hitting|punish|punishing|scratch|scratching myself|my_arms|my_arm|my_thighs|my_legs|my_skin",
        "hurt|hurting|harm|harming|injure|injuring myself",
        "self harm|harming|harmed|injury|injure|mutilation|mutilate",
        "selfharm|selfharming",
        "i|i've|ive|been|started|start|keep|kept|want_to|wanna sh|cutting [again|myself|tonight]",
        "relapse|relapsed|relapsing on|with|into sh|cutting|self_harm|selfharm",
        "relapse|relapsed|relapsing .. cut|cutting|burned|burnt|burn|sh|self_harm|selfharm|hurt_myself",
        "urge|urges to cut|sh|burn|self_harm|hurt_myself|harm_myself",
        "razor|razors|blade|blades|sharpener [out] again",
        "scratch|scratched|scratching|cut|burned|burnt|hit|bit|bite my|myself .. until|till|til bled|bleed|bleeding|blood|it_bled|they_bled",
        "got|bought|have|hid|hiding|hidden|keep|grab|grabbed [a|the|my|some|new|fresh] razor|razors|blade|blades",
    ),
    "farewell": (
        "goodbye|bye|farewell everyone|everybody|all|world|forever|guys|friends",
        "goodbye cruel world",
        "this is|this'll_be|this_will_be my last post|message|goodbye|words|toot",
        "by the time you read this",
        "wrote|writing|written|write|left|leaving|leave [my|a|the|some|all] suicide|goodbye|farewell note|notes|letter|letters",
        "suicide note",
        "giving|gave|give|given away my things|stuff|belongings|possessions|pets|cat|dog|books|clothes",
        "thank you for everything .. goodbye",
        "take|please_take care of my cat|dog|pets|kids|family when|after i'm|im|i_am gone",
        "sorry for everything .. goodbye|forgive_me",
        "when i'm|im|i_am gone",
        "won't|wont|will_not need anyone|someone|somebody to look after|take_care_of|feed",
        "gave|given|giving|rehomed|rehoming my dog|cat|pets|rabbit|dogs|cats .. .. won't|wont|don't|dont|no_longer need",
    ),
}

HYPERBOLE: tuple[str, ...] = (
    "die|dying|died|dead of|from embarrassment|shame|laughter|laughing|boredom|cringe|cuteness|heat|hunger|thirst|exhaustion|happiness|jealousy|envy|curiosity",
    "die|dying|died laughing",
    "kil|kiling|kiled myself laughing",
    "kil|kiling|kiled myself at|over|studying|working|trying|laughing|to_finish|to_get|to_make|to_meet|on_this|for_this|for_a|for_the|at_work|at_the_gym",
    "to die for",
    "if i have to|hear|see|get|read .. one more",
    "one more time .. kil myself",
    "dead tired",
    "cut myself shaving|cooking|chopping|on|while|by_accident|accidentally|slicing",
    "hurt|hurting|injured|injure myself at|in|playing|while|lifting|running|falling|skiing|training",
    "burn|burnt|burned myself on|cooking|with_the|ironing|baking",
    "hit myself on|with_the|against",
    "sleep and never wake up .. hibernat",
    "ready to go home|to_go_out|to_go_to|to_go_shopping",
    "kill my brother|sister",
    "goodbye|bye everyone|all|guys|friends .. see|back|tomorrow|next|later|soon|weekend|holiday|vacation|trip|month|monday",
    "this is my last post|message before|for|until|of_the",
    "give|gave|giving|given up on life .. advice|hacks",
    "better off dead .. than|if|because|funny",
    "overdose on|with sugar|caffeine|coffee|chocolate|candy|cake|netflix|anime",
    "od on sugar|caffeine|coffee|chocolate|candy|cake|netflix|anime",
    "jump off|from .. bridge .. when|we|bungee|into_the_river|into_the_lake|into_the_sea|for_fun",
    "shoot myself in the foot",
    "tired of living out of|in|with",
    "no way out of|of_this_meeting|of_this_contract",
    "rope course|swing|climbing|bridge",
    "want to disappear .. embarrassing|embarrassment|meeting|awkward|cringe",
    "end it all .. movie|film|season|series|episode|novel|book",
    "end it with|between|for_good_with",
)

NEGATORS: tuple[str, ...] = tuple(
    "not no never nor don't dont doesn't doesnt didn't didnt won't wont wouldn't wouldnt isn't isnt aren't arent "
    "ain't aint hardly nobody noone cannot can't cant shouldn't shouldnt".split()
)
FIRST_PERSON: tuple[str, ...] = tuple("i i'm im i've ive i'd id i'll me my myself mine".split())
THIRD_PERSON: tuple[str, ...] = tuple(
    "he she they he's she's they're hes shes his her their him them herself himself themselves someone somebody "
    "said says told tells wrote writes sang sings sung posted tweeted quote quoted quoting according "
    "song songs lyrics lyric book novel movie film show episode character characters narrator article headline "
    "headlines news report reports study poem".split()
)
SPEECH: tuple[str, ...] = tuple("said says told tells wrote writes sang sings posted tweeted asked".split())
PAST: tuple[str, ...] = (
    "used to",
    "years|months|decades ago",
    "a long time ago",
    "back then|when|in_the_day|in_high_school|in_school|in_college",
    "when i was [a|younger|in|at|still]",
    "as a teen|teenager|kid|child|student",
    "in high school|college",
    "recovered|recovery|survived|survivor|survivors",
    "years|months|days clean|free",
    "clean for|since",
    "glad i'm|im|i_am still here|alive",
    "glad i didn't|didnt",
    "got through|better|help",
    "it gets|got better",
    "looking back",
    "those days|times",
    "at my lowest",
    "at the time",
)
NOW: tuple[str, ...] = ("now|again|still|today|tonight|currently|lately|anymore|these_days|right_now|this_week",)
CLAUSE_BREAKS: tuple[str, ...] = ("but|and_now|now|so|because|cause|though|although|yet|just|while",)
STOPWORDS: frozenset[str] = frozenset(
    "the i and to is it you of a not my me this that don't dont want just with can't be have was are so "
    "what do im i'm if for on at but no all like feel about anymore really can will get".split()
)
