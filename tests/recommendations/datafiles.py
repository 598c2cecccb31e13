"""Small dataset files in each supported format, written for one test into a temp folder."""

import random
import zipfile
from pathlib import Path

GENRES = "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\nDocumentary|7\nDrama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\nMystery|13\nRomance|14\nSci-Fi|15\nThriller|16\nWar|17\nWestern|18\n"


def _flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


ML100K = {
    "u.data": "1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n3\t3\t1\t889237455\n",
    "u.item": (
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{_flags(3, 4, 5)}\n"
        f"2|GoldenEye (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?GoldenEye%20(1995)|{_flags(1, 2, 16)}\n"
        f"3|Misérables, Les (1995)|01-Jan-1995|||{_flags(8)}\n"
    ),
    "u.user": "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|02138\n",
    "u.genre": GENRES,
}

ML1M = {
    "ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
    "movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n",
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
}

ATOMIC = {
    "toy.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\ti1\t4\t100\nu1\ti2\t2\t200\nu2\ti1\t5\t150\n",
    "toy.item": "item_id:token\ttitle:token_seq\tcategories:token_seq\tprice:float\tbrand:token\ni1\tThe Witcher 3\tRPG Open-World\t29.99\tCDPR\ni2\tPortal 2\tPuzzle\t9.99\tValve\n",
    "toy.user": "user_id:token\tage:token\tzip_code:token\nu1\t31\t02139\nu2\t45\t10001\n",
}


def write(folder: Path, files: dict[str, str], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_bytes(text.encode(encoding))
    return folder


def write_zip(path: Path, files: dict[str, str], *, prefix: str = "", encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(prefix + name, text.encode(encoding))
    return path


def steam_files(folder: Path, n_users: int = 12, n_games: int = 15) -> Path:
    """RecBole's Steam layout: play logs keyed by product_id, games keyed by id."""
    rng = random.Random(1)
    inter = ["user_id:token\tplay_hours:float\tproduct_id:token\ttimestamp:float"]
    for user in range(n_users):
        for position, game in enumerate(rng.sample(range(n_games), 6)):
            inter.append(f"s{user}\t{rng.uniform(0, 90):.1f}\t{game}\t{1_500_000_000 + 1000 * user + position}")
    item = ["id:token\tapp_name:token_seq\tgenres:token_seq\tprice:float"]
    item += [f"{game}\tGame {game}\tAction Indie\t{game % 4 * 4.99:.2f}" for game in range(n_games)]
    return write(folder, {"steam.inter": "\n".join(inter) + "\n", "steam.item": "\n".join(item) + "\n"})


def mind_files(folder: Path, n_users: int = 12, n_news: int = 20) -> Path:
    """MIND impressions: label 1 is a click, 0 a headline shown and not clicked."""
    rng = random.Random(2)
    inter = ["user_id:token\titem_id:token\tlabel:float\ttimestamp:float"]
    for user in range(n_users):
        for position, news in enumerate(rng.sample(range(n_news), 8)):
            label = 1 if position % 2 == 0 else 0
            inter.append(f"U{user}\tN{news}\t{label}\t{1_570_000_000 + 600 * user + position}")
    item = ["item_id:token\tcategory:token\ttitle:token_seq"]
    item += [f"N{news}\t{'sports' if news % 2 else 'news'}\tHeadline {news}" for news in range(n_news)]
    return write(folder, {"mind.inter": "\n".join(inter) + "\n", "mind.item": "\n".join(item) + "\n"})
