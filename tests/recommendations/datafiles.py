"""Small dataset files in each supported format, written for one test into a temp folder."""

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
