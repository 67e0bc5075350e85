"""Generate the preset banks and unit trees where the real ones are not public (deterministic).

Run: .venv/bin/python contests/generate.py   (rewrites the CSVs it owns; commit the result)
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).parent

TOPICS = [
    ("thủ tục hành chính", "Theo Nghị định 63/2010/NĐ-CP, thủ tục hành chính phải bảo đảm"),
    ("dịch vụ công trực tuyến", "Dịch vụ công trực tuyến toàn trình cho phép người dân"),
    ("Bộ phận Một cửa", "Bộ phận Tiếp nhận và Trả kết quả có nhiệm vụ"),
    ("cơ chế một cửa liên thông", "Theo Nghị định 61/2018/NĐ-CP, cơ chế một cửa liên thông là"),
    ("phản ánh, kiến nghị", "Cá nhân, tổ chức phản ánh, kiến nghị về quy định hành chính qua"),
    ("chuyển đổi số", "Cổng Dịch vụ công quốc gia được sử dụng để"),
    ("cải cách hành chính 2021-2030", "Nghị quyết 76/NQ-CP xác định trọng tâm cải cách hành chính là"),
    ("chỉ số hài lòng", "Chỉ số SIPAS đo lường"),
]
OPTIONS = ["đúng quy định, công khai, minh bạch", "thực hiện trong thời hạn ngắn nhất", "do cơ quan cấp trên quyết định",
           "không cần hồ sơ giấy", "tiếp nhận, hướng dẫn và trả kết quả", "thu phí theo thỏa thuận",
           "nộp hồ sơ và thanh toán trực tuyến", "chỉ áp dụng cho doanh nghiệp", "cả ba phương án trên",
           "mức độ hài lòng của người dân, tổ chức", "lưu trữ hồ sơ giấy", "gửi văn bản qua bưu điện"]


def bank(path: Path, count: int, groups: list[str | None], seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "group", "text", "A", "B", "C", "D", "answer"])
        for n in range(1, count + 1):
            topic, stem = TOPICS[n % len(TOPICS)]
            opts = rng.sample(OPTIONS, 4)
            w.writerow([f"Q{n:03d}", groups[n % len(groups)] or "", f"Câu {n} ({topic}): {stem}…", *opts,
                        rng.choice("ABCD")])


NGHEAN_DEPARTMENTS = [
    "Văn phòng UBND tỉnh", "Sở Nội vụ", "Sở Tư pháp", "Sở Kế hoạch và Đầu tư", "Sở Tài chính",
    "Sở Công Thương", "Sở Nông nghiệp và Phát triển nông thôn", "Sở Giao thông vận tải", "Sở Xây dựng",
    "Sở Tài nguyên và Môi trường", "Sở Thông tin và Truyền thông", "Sở Lao động - Thương binh và Xã hội",
    "Sở Văn hóa và Thể thao", "Sở Du lịch", "Sở Khoa học và Công nghệ", "Sở Giáo dục và Đào tạo", "Sở Y tế",
    "Thanh tra tỉnh", "Ban Dân tộc", "Ban Quản lý Khu kinh tế Đông Nam",
]
NGHEAN_DISTRICTS = [
    "Thành phố Vinh", "Thị xã Cửa Lò", "Thị xã Thái Hòa", "Thị xã Hoàng Mai", "Huyện Quỳnh Lưu",
    "Huyện Diễn Châu", "Huyện Yên Thành", "Huyện Nghi Lộc", "Huyện Hưng Nguyên", "Huyện Nam Đàn",
    "Huyện Thanh Chương", "Huyện Đô Lương", "Huyện Anh Sơn", "Huyện Con Cuông", "Huyện Tương Dương",
    "Huyện Kỳ Sơn", "Huyện Quế Phong", "Huyện Quỳ Châu", "Huyện Quỳ Hợp", "Huyện Nghĩa Đàn", "Huyện Tân Kỳ",
]


QUANGNAM_DISTRICTS = [
    "Thành phố Tam Kỳ", "Thành phố Hội An", "Thị xã Điện Bàn", "Huyện Núi Thành", "Huyện Phú Ninh",
    "Huyện Thăng Bình", "Huyện Quế Sơn", "Huyện Nông Sơn", "Huyện Duy Xuyên", "Huyện Đại Lộc", "Huyện Hiệp Đức",
    "Huyện Tiên Phước", "Huyện Bắc Trà My", "Huyện Nam Trà My", "Huyện Phước Sơn", "Huyện Nam Giang",
    "Huyện Đông Giang", "Huyện Tây Giang",
]
# Quảng Nam's seed also names party, front and mass organisations and central agencies in the province.
QUANGNAM_PARTY = ["Văn phòng Tỉnh ủy", "Ủy ban Mặt trận Tổ quốc Việt Nam tỉnh", "Tỉnh đoàn", "Hội Liên hiệp Phụ nữ tỉnh"]
QUANGNAM_CENTRAL = ["Bảo hiểm xã hội tỉnh", "Cục Thuế tỉnh", "Kho bạc Nhà nước tỉnh", "Cục Thống kê tỉnh"]
QUANGBINH_DISTRICTS = [
    "Thành phố Đồng Hới", "Thị xã Ba Đồn", "Huyện Bố Trạch", "Huyện Quảng Ninh", "Huyện Lệ Thủy",
    "Huyện Quảng Trạch", "Huyện Tuyên Hóa", "Huyện Minh Hóa",
]
# Residents aged 15 and over per district: assumed, about three quarters of the 2019 census population.
QUANGBINH_RESIDENTS = [100_000, 78_000, 140_000, 68_000, 107_000, 80_000, 59_000, 37_000]
# Hải Phòng is a city (thành phố): its departments are the city's, as the seed lists its units.
HAIPHONG_DEPARTMENTS = [
    "Văn phòng UBND thành phố", "Sở Nội vụ", "Sở Tư pháp", "Sở Kế hoạch và Đầu tư", "Sở Tài chính",
    "Sở Công Thương", "Sở Nông nghiệp và Phát triển nông thôn", "Sở Giao thông vận tải", "Sở Xây dựng",
    "Sở Tài nguyên và Môi trường", "Sở Thông tin và Truyền thông", "Sở Lao động - Thương binh và Xã hội",
    "Sở Văn hóa và Thể thao", "Sở Du lịch", "Sở Khoa học và Công nghệ", "Sở Giáo dục và Đào tạo", "Sở Y tế",
    "Sở Ngoại vụ", "Thanh tra thành phố",
]
HAIPHONG_DISTRICTS = [
    "Quận Hồng Bàng", "Quận Ngô Quyền", "Quận Lê Chân", "Quận Hải An", "Quận Kiến An", "Quận Đồ Sơn",
    "Quận Dương Kinh", "Huyện Thủy Nguyên", "Huyện An Dương", "Huyện An Lão", "Huyện Kiến Thụy",
    "Huyện Tiên Lãng", "Huyện Vĩnh Bảo", "Huyện Cát Hải", "Huyện Bạch Long Vĩ",
]
HAIPHONG_CENTRAL = ["Bảo hiểm xã hội thành phố", "Công an thành phố", "Cục Thuế thành phố", "Cục Hải quan thành phố"]


class Tree:
    """A units.csv being written: prize units (no parent) and their children, headcounts assumed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rows: list[list[object]] = []

    def add(self, code: str, name: str, parent: str, kind: str, headcount: int) -> str:
        self.rows.append([code, name, parent, kind, headcount])
        return code

    def departments(self, names: list[str], *, prefix: str = "S", kind: str = "so_nganh",
                    sub_name: str = "Đơn vị trực thuộc", sub_units: tuple[int, int] = (1, 3),
                    sub_headcount: tuple[int, int] = (15, 90)) -> None:
        for i, name in enumerate(names, start=1):
            code = self.add(f"{prefix}{i:02d}", name, "", kind, self.rng.randint(40, 160))
            for j in range(1, self.rng.randint(*sub_units) + 1):
                self.add(f"{code}-{j:02d}", f"{sub_name} {j} - {name}", code, "don_vi_truc_thuoc",
                         self.rng.randint(*sub_headcount))

    def agencies(self, names: list[str], prefix: str, kind: str, headcount: tuple[int, int]) -> None:
        for i, name in enumerate(names, start=1):
            self.add(f"{prefix}{i:02d}", name, "", kind, self.rng.randint(*headcount))

    def districts(self, names: list[str], *, kind: str = "huyen", communes: tuple[int, int] = (3, 7),
                  commune_name: str = "UBND xã/phường", residents: list[int] | None = None) -> None:
        for i, name in enumerate(names, start=1):
            code = self.add(f"H{i:02d}", f"UBND {name}", "", kind, self.rng.randint(60, 150))
            for j in range(1, self.rng.randint(*communes) + 1):
                self.add(f"{code}-X{j:02d}", f"{commune_name} {j} - {name}", code, "xa", self.rng.randint(18, 35))
            if residents is not None:  # citizens register under their locality, counting for its prize
                self.add(f"{code}-ND", f"Nhân dân {name}", code, "nhan_dan", residents[i - 1])

    def write(self, path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["code", "name", "parent_code", "kind", "headcount"])
            w.writerows(self.rows)


if __name__ == "__main__":
    bank(HERE / "nghean-2022" / "questions.csv", 400, [None], seed=400)
    nghean = Tree(2022)
    nghean.departments(NGHEAN_DEPARTMENTS, sub_units=(2, 4), sub_headcount=(15, 120))
    nghean.districts(NGHEAN_DISTRICTS, communes=(4, 8))
    nghean.write(HERE / "nghean-2022" / "units.csv")
    bank(HERE / "demo" / "questions.csv", 60, [None], seed=60)
    for slug, seed in (("quangnam-2023", 2023), ("quangbinh-2021-r2", 2021), ("haiphong-2023", 274)):
        (HERE / slug).mkdir(exist_ok=True)
        bank(HERE / slug / "questions.csv", 400, [None], seed=seed)
    quangnam = Tree(2023)
    quangnam.departments(NGHEAN_DEPARTMENTS[:18])
    quangnam.agencies(QUANGNAM_PARTY, "D", "dang_doan_the", (20, 80))
    quangnam.agencies(QUANGNAM_CENTRAL, "T", "trung_uong", (80, 300))
    quangnam.districts(QUANGNAM_DISTRICTS)
    quangnam.write(HERE / "quangnam-2023" / "units.csv")
    quangbinh = Tree(2021)
    quangbinh.departments(NGHEAN_DEPARTMENTS[:18])
    quangbinh.districts(QUANGBINH_DISTRICTS, residents=QUANGBINH_RESIDENTS)
    quangbinh.write(HERE / "quangbinh-2021-r2" / "units.csv")
    haiphong = Tree(274)
    haiphong.departments(HAIPHONG_DEPARTMENTS, sub_name="Chi cục / Ban trực thuộc")
    haiphong.agencies(["Ban Quản lý Khu kinh tế Hải Phòng"], "K", "so_nganh", (60, 120))
    haiphong.agencies(HAIPHONG_CENTRAL, "T", "trung_uong", (150, 600))
    haiphong.districts(HAIPHONG_DISTRICTS, kind="quan_huyen", commune_name="UBND xã/phường/thị trấn")
    haiphong.write(HERE / "haiphong-2023" / "units.csv")
