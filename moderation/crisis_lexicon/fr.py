# ruff: noqa: E501  (lexicon data: one pattern per line reads better than wrapped strings)
"""French crisis-language lexicon (pattern syntax: moderation.crisis.compile_pattern).

Elision and contractions: apostrophes separate words, so ``j veux`` matches "j'veux" and
``je|j`` covers "je"/"j'"; spoken forms ("j'veux", "chuis", "j'ai pas", dropped "ne") are
listed. Diacritics are stripped before matching ("arrêter" = "arreter").
"""

LANG = "fr"

_JE = "[je|j|moi|jsuis|chuis|j'suis|vraiment|juste|tellement|trop|parfois|souvent]"
_WANT = "veux|jveux|jvoudrais|voudrais|reve_de|reve_d|revais_de|aimerais|ai_envie_de|ai_envi_de|envie_de|envi_de|ai_envie_d|envie_d|envie|souhaite|prefererais|besoin_de"
_DIE = "mourir|mourrir|crever|disparaitre|disparaitre_pour_toujours|plus_exister|ne_plus_exister|ne_plus_etre_la|etre_mort|etre_morte"

LEXICON: dict[str, tuple[str, ...]] = {
    "ideation": (
        f"{_JE} {_WANT} {_DIE}",
        f"{_JE} [ai] [tellement|trop|juste|vraiment|tres] envie|envi de|d mourir|crever|disparaitre",
        "[je|j] [ne|n] veux|voudrais|ai_envie_de|ai_envi_de|ai_plus_envie_de|ai_plus_envi_de|ai_plus_envie_d plus vivre|exister|me_reveiller|continuer|etre_la|vivre",
        "[je|j] [ne|n] ai plus envie|envi de|d vivre|exister|continuer|me_reveiller",
        "[je|j] [ne|n] veux pas vivre|exister|me_reveiller",
        "aucune|pas_de|aucun|plus_aucune|plus_de raison|sens|interet de|a vivre|continuer|la_vie",
        "plus de raison|sens de|a vivre|continuer",
        "a quoi bon vivre|continuer|exister|me_lever",
        "la vie ne vaut pas|plus la peine",
        "ne vaut plus|pas la peine de vivre|d_etre_vecue",
        "marre|mare de la|cette vie|vivre|exister",
        "fatigue|fatiguee|lasse|las de vivre|la_vie|exister",
        "idees|idee|pensees|pensee suicidaires|suicidaire|noires|de_mort|de_suicide",
        "[je] pense|pensais|songe|songeais|reflechis a|au|a_la suicide|mourir|mort|ma_mort",
        "[je|j] [me] suis|sens|sentais|sent suicidaire",
        "ne plus me reveiller",
        "ne jamais me reveiller",
        "[je] prefererais|aimerais|voudrais|prefere ne pas|plus etre en vie|la|ne|nee",
        "[je] veux|voudrais|aimerais|envie_de|envie_d quitter|sortir_de|partir_de cette|la vie",
        "quitter ce monde",
        "plus rien n a de sens|d'importance|d_importance",
        "[je|j] veux|voudrais|aimerais|envie_de [juste] dormir pour toujours|a_jamais|et_ne_plus_me_reveiller",
        "veux|voudrais|aimerais|souhaite que tout s arrete|finisse|cesse|s_arrete",
        "si je [n] etais plus la|en_vie|vivant|vivante",
        "plus jamais me reveiller|me_lever",
        "pourquoi je suis encore|toujours la|en_vie|vivant|vivante",
        "j aurais|aurai prefere|du ne jamais naitre|ne_pas_naitre|ne_pas_exister",
        "mieux|mieu vaut|vaudrait que je meure|sois_mort|sois_morte|disparaisse",
        "je voudrais|veux|prefererais etre mort|morte|six_pieds_sous_terre",
    ),
    "hopelessness": (
        "[je|j] [suis|me_sens|me_sent] desespere|desesperee|sans_espoir|au_bout_du_rouleau|a_bout",
        "[je|j] [n] ai plus|aucun d|aucun espoir",
        "plus aucun espoir",
        "[je|j] [n] ai plus gout a|au|de rien|la_vie|vivre",
        "[je|j] [ne] vois pas|plus|aucun d|de avenir|futur",
        "[je|j] [me] sens|suis de trop",
        "envie|besoin de tout arreter|lacher",
        "aucun espoir",
        "[je|j] suis un|une fardeau|poids pour|a_tout|a_ma",
        "je ne suis qu un fardeau|poids",
        "fardeau pour tout le monde|pour_les_autres|pour_ma_famille|pour_mes_proches",
        "sens|suis|sent comme un|une fardeau|poids",
        "[je|j] [n] [ai] plus la|aucune force de|pour continuer|vivre|me_battre|tenir|lutter",
        "mieux|mieu sans moi",
        "[je|j] [n] en peux plus",
        "je peux plus continuer|tenir|supporter",
        "je ne peux plus continuer|tenir|supporter",
        "aucune|pas_de|plus_de issue|sortie",
        "personne ne remarquerait|verrait|pleurerait si je mourais|disparaissais|partais|n_etais_plus_la",
        "ma vie est|n'est finie|foutue|inutile|sans_interet",
        "tout est foutu|perdu|sans_espoir",
        "j abandonne tout",
    ),
    "intent": (
        f"{_JE} {_WANT} me suicider|suicide|tuer|foutre_en_l'air|foutre_en_lair",
        f"{_JE} {_WANT} en finir",
        "je|j|moi .. me|m suicider|suicide|suicid*|tuer|tue|foutre_en_l'air|foutre_en_lair|flinguer|flingue|buter|bute|unalive",
        "en finir [avec] [la|ma] [vie|tout]",
        "mettre|mets|mettrai|mettre_un_terme fin|un_terme a|a_mes mes|ma jours|vie",
        "mettre fin a mes jours|ma_vie",
        "passer a l acte",
        "je|j vais|veux|suis_pret|suis_prete .. passer a l acte",
        "me donner la mort",
        "je|j ne serai|serais plus la demain|bientot|pour_longtemps|la_semaine_prochaine",
        "je|j serai|serais plus la demain|bientot|pour_longtemps",
        "[je] suis pret|prete a mourir|partir|en_finir",
        "[je] [ne] serai|serais plus un|une probleme|fardeau|poids|charge pour|a personne|quiconque|vous|toi|ma_famille",
        "c est decide",
        "[je] vais le faire ce soir|cette_nuit|demain",
        "ce soir|cette_nuit|demain je|j vais le faire|passer_a_l_acte|me_tuer|en_finir",
    ),
    "plan": (
        "j|je ai|avais un plan pour|de mourir|en_finir|me_tuer|me_suicider",
        "j|je ai|avais tout prevu|planifie|organise",
        "j|je ai choisi|fixe la|le|une date|jour|moment|endroit",
        "j|je cherche|cherchais|ai_cherche comment|un_moyen|une_facon mourir|me_tuer|me_suicider|en_finir",
        "comment me suicider|tuer|foutre_en_l'air|en_finir|mourir_sans_souffrir",
        "moyen|methode|facon le plus|la_plus|sans_douleur|indolore de mourir|me_suicider|en_finir",
        "mourir sans souffrir|douleur",
    ),
    "method": (
        "me pendre|pends|pendrai",
        "[une] corde .. me pendre|pour|au",
        "j|je ai|vais acheter|achete|prepare|fait|fais|faire un|une|la noeud|nud|corde",
        "sauter|sauterai|jeter|jette du|d|de|par|depuis .. pont|toit|fenetre|balcon|immeuble|falaise|viaduc|etage",
        "me jeter|jette sous|devant [un|le|une|la] train|metro|voiture|camion|bus|rer",
        "avaler|avale|prendre|prends|gober|gobe|ai_avale|ai_pris tout|toutes|tous|toute|la_boite|la_plaquette .. cachets|pilules|medicaments|comprimes|medocs|boite|plaquette",
        "surdose|overdose|od .. cachets|pilules|medicaments|comprimes|medocs|doliprane|paracetamol|insuline|somniferes",
        "faire une surdose|overdose|od",
        "dose|quantite mortelle|letale|fatale",
        "quel|quels|quelle|quelles pont|ponts|immeuble|immeubles|falaise|falaises|toit|toits .. plus_haut|plus_hauts|plus_haute|plus_hautes|assez_haut|assez_hauts|mortel|mortels",
        "combien de cachets|comprimes|pilules|medicaments|doliprane|paracetamol .. pour|faut|mortel*",
        "stocker|stocke|garde|garder|accumule|accumuler|mets_de_cote mes|des cachets|comprimes|pilules|medicaments|medocs",
        "m ouvrir|ouvre les|mes veines|poignets",
        "me taillader|taillade|trancher|tranche les|mes veines|poignets",
        "me tirer une balle",
        "me noyer|noie|m_empoisonner|empoisonner",
        "me jeter|jette a l eau|du_haut",
    ),
    "self_harm": (
        "me scarifier|scarifie|scarifiais|scarifiai",
        "me|m suis griffe|griffee|gratte|grattee|coupe|coupee|brule|brulee|mutile|mutilee les|mes bras|jambes|poignets|cuisses|peau",
        "griffe|griffee|gratte|grattee|coupe|coupee|frappe|frappee|mordu|mordue .. jusqu au sang",
        "me suis [encore|de_nouveau|a_nouveau|re] scarifie|scarifiee|mutile|mutilee|coupe|coupee|brule|brulee|fait_du_mal|fait_mal",
        "scarification|scarifications|scarif",
        "me mutiler|mutile|automutile|automutiler",
        "automutilation",
        "me faire du mal|mal",
        "me couper|coupe|coupais|coupai",
        "me bruler|brule|frapper|frappe|griffer|griffe",
        "j ai rechute|replonge .. scarif*|coupures|me_couper|lames",
        "envie|besoin|pulsion|pulsions de|d me couper|me_scarifier|me_faire_du_mal|me_faire_mal|me_mutiler",
        "lame|lames|rasoir|cutter [ressorti|ressortie|ressortis|cachee|cachees|planquee]",
        "j ai acheté|achete|cache|planque|ressorti des|une|mes lames|lame|rasoir",
    ),
    "farewell": (
        "adieu [a] tous|tout_le_monde|le_monde|mes_amis",
        "adieu monde|cruel",
        "au revoir a tous|tout_le_monde .. pour toujours|jamais",
        "c|ce|ceci est|sera mon dernier message|post|mot|poste",
        "lettre|lettres|mot d|de adieu|suicide",
        "j|je ai ecrit|laisse|laisserai ma|une|mes lettre|lettres|mot",
        "quand vous lirez ce|mon message|mot|post",
        "je donne|distribue|ai_donne mes affaires|objets|choses",
        "prenez soin de mon chat|chien|ma_famille|mes_enfants",
        "confie|confiee|donne|donnee|laisse|laissee mon|ma|mes chat|chien|chats|chiens|animaux|lapin .. .. [n] [en] aurai|aurais|aura plus besoin",
        "pardonnez moi .. adieu|je_pars|pour_tout",
    ),
}

HYPERBOLE: tuple[str, ...] = (
    "meurs|mourir|mourais|mort|morte|morts|crever|creve|crevais|crevé de|d rire|faim|soif|chaud|froid|honte|ennui|envie|fatigue|peur|impatience|curiosite|jalousie|plaisir|chaleur",
    "mort|morte de rire",
    "a mourir de rire|d_ennui",
    "mdr|ptdr|mort_de_rire",
    "ca|ce|cette|ces|il|elle|tu|vous|ils|elles|ce_boulot|ce_travail|cet_exam|ce_film .. va|vont|vas|me me tuer|tue|tues|tuent",
    "me suis tue|tuee a|au|pour|sur",
    "me tue|tuer a la|au|pour tache|travail|boulot|salle",
    "lettre|lettres|mot d|de adieu|suicide de|du|des|d",
    "en peux plus de|du|des ce|cette|ces|cet|la|le|les|mon|ma|mes|ton|ta|tes|son|sa|ses|leur|leurs|l|attendre|ce_bruit|rire",
    "je peux plus continuer|tenir|supporter ce|cette|ces|le|la|les|mon|ma|mes|ton|ta|son|sa|ses|comme_ca",
    "en finir avec ce|cette|ces|cet|le|les|un|une|son|sa|ses|leur|leurs|ton|ta|tes|mon_travail|mon_boulot|mon_memoire|ma_these|mes_devoirs|mes_exams|les_exams|la_paperasse|le_menage",
    "me couper|coupe|coupais|suis_coupe|suis_coupee|suis_couper les|la|mes|ma|le|un|une|des cheveux|ongles|frange|doigt|doigts|tranche|part|morceau|barbe|pain|gateau",
    "me suis coupe|coupee|coupe en|avec|sur|au|a_la cuisinant|couteau|papier|doigt|rasant",
    "me bruler|brule|suis_brule|suis_brulee avec|au|a_la|en four|poele|fer|cuisinant|soleil|cafe",
    "me suis brule|brulee|coupe|coupee|griffe|griffee les|la|le|mes mains|main|doigt|doigts .. cuisinant|cuisine|four|poele|couteau|bricolant|jardinant|rosiers|ronces",
    "me frapper|frappe le|la|contre|au|a_la front|tete|table|mur",
    "me faire du mal en|au|a_la sport|tombant|courant|muscu",
    "sauter|saute du|d|de|par|depuis .. pont|toit|falaise .. elastique|parachute|plongeoir|plonger|piscine|mer|riviere|lac|bungee",
    "je pense|pensais|songe a|au mourir|mort .. de|rire|film|livre|roman|philo",
    "je me jette a l eau",
    "plus gout a|au|pour le|la|les chocolat|cafe|sucre|sport|cinema|lecture|musique|cuisine|travail",
    "pas|aucun|plus d|de avenir pour|a ce|cette|ces|le|la|les|notre|son|sa|leur|mon_entreprise|mon_projet",
    "tout arreter et de|d partir|voyager|recommencer|changer",
    "adieu|au_revoir les|la|le vacances|weekend|week-end|ete|soleil|salaire|argent|sucre|regime",
    "c est mon dernier message|post|mot avant|de|pour|sur|du|de_la|de_l|de_l'annee|de_la_journee",
    "ce soir .. film|serie|match|soiree|concert|resto|restaurant|diner|apero",
    "je|j vais le faire ce soir .. gateau|recette|diner|menage|exercice|devoir|devoirs|video",
    "sans douleur .. epilation|tatouage|accouchement|dentiste",
)

NEGATORS: tuple[str, ...] = tuple("ne n pas jamais aucun aucune rien personne non guere nullement".split())
FIRST_PERSON: tuple[str, ...] = tuple("je j moi me m mon ma mes jsuis chuis".split())
THIRD_PERSON: tuple[str, ...] = tuple(
    "il elle ils elles lui leur eux on dit disait dira a_dit ecrit ecrivait chante chantait chanson chansons "
    "paroles livre roman film serie personnage personnages article selon citation cite poeme journal "
    "actualite actualites infos".split()
)
SPEECH: tuple[str, ...] = tuple("dit disait dira ecrit ecrivait chante chantait".split())
PAST: tuple[str, ...] = (
    "autrefois|jadis|auparavant",
    "dans_le_passe|a_l_epoque|a_cette_epoque|a_l'epoque",
    "avant je|j|ca|c|tout",
    "il y a [des|quelques|plusieurs|deux|trois|cinq|dix] ans|annees|mois",
    "quand|lorsque j|je etais|avais [plus] [jeune|ado|adolescent|adolescente|enfant|au_lycee|au_college|a_la_fac]",
    "au lycee|college",
    "a l adolescence",
    "gueri|guerie|retabli|retablie|remission|survivant|survivante|survecu|rescape|rescapee",
    "je m'en suis sorti|sortie",
    "m en suis sorti|sortie",
    "contente|content|heureux|heureuse d etre encore|toujours en vie|la",
    "aujourd hui ca va|je_vais_mieux|je_vais_bien",
)
NOW: tuple[str, ...] = (
    "maintenant|encore|toujours|aujourd'hui|ce_soir|cette_nuit|a_nouveau|de_nouveau|en_ce_moment|actuellement",
)
CLAUSE_BREAKS: tuple[str, ...] = ("mais|pourtant|cependant|car|parce_que|puisque|alors|donc|maintenant|juste|bref",)
STOPWORDS: frozenset[str] = frozenset(
    "le la les je j de des et est pas que qui une un mais pour avec ne suis mon ma c vous tu moi plus tout ça ca "
    "du au en y a ai sont cette ce il elle on me".split()
)
