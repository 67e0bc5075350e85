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
QUANGBINH_DISTRICTS = [
    "Thành phố Đồng Hới", "Thị xã Ba Đồn", "Huyện Bố Trạch", "Huyện Quảng Ninh", "Huyện Lệ Thủy",
    "Huyện Quảng Trạch", "Huyện Tuyên Hóa", "Huyện Minh Hóa",
]
HAIPHONG_DISTRICTS = [
    "Quận Hồng Bàng", "Quận Ngô Quyền", "Quận Lê Chân", "Quận Hải An", "Quận Kiến An", "Quận Đồ Sơn",
    "Quận Dương Kinh", "Huyện Thủy Nguyên", "Huyện An Dương", "Huyện An Lão", "Huyện Kiến Thụy",
    "Huyện Tiên Lãng", "Huyện Vĩnh Bảo", "Huyện Cát Hải", "Huyện Bạch Long Vĩ",
]
HAIPHONG_CENTRAL = ["Bảo hiểm xã hội thành phố", "Công an thành phố", "Cục Thuế thành phố", "Cục Hải quan thành phố"]


def units(path: Path, seed: int, departments: list[str], districts: list[str], central: tuple[str, ...] = (), *,
          sub_units: tuple[int, int] = (1, 3), sub_headcount: tuple[int, int] = (15, 90),
          communes: tuple[int, int] = (3, 7)) -> None:
    """Departments (with a few sub-units), central agencies, districts (with communes); headcounts assumed."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "name", "parent_code", "kind", "headcount"])
        for i, name in enumerate(departments, start=1):
            code = f"S{i:02d}"
            w.writerow([code, name, "", "so_nganh", rng.randint(40, 160)])
            for j in range(1, rng.randint(*sub_units) + 1):
                w.writerow([f"{code}-{j:02d}", f"Đơn vị trực thuộc {j} - {name}", code, "don_vi_truc_thuoc",
                            rng.randint(*sub_headcount)])
        for i, name in enumerate(central, start=1):
            w.writerow([f"T{i:02d}", name, "", "trung_uong", rng.randint(150, 600)])
        for i, name in enumerate(districts, start=1):
            code = f"H{i:02d}"
            w.writerow([code, f"UBND {name}", "", "huyen", rng.randint(60, 150)])
            for j in range(1, rng.randint(*communes) + 1):
                w.writerow([f"{code}-X{j:02d}", f"UBND xã/phường {j} - {name}", code, "xa", rng.randint(18, 35)])


if __name__ == "__main__":
    bank(HERE / "nghean-2022" / "questions.csv", 400, [None], seed=400)
    units(HERE / "nghean-2022" / "units.csv", 2022, NGHEAN_DEPARTMENTS, NGHEAN_DISTRICTS,
          sub_units=(2, 4), sub_headcount=(15, 120), communes=(4, 8))
    bank(HERE / "demo" / "questions.csv", 60, [None], seed=60)
    for slug, seed, districts, central in (("quangnam-2023", 2023, QUANGNAM_DISTRICTS, ()),
                                           ("quangbinh-2021-r2", 2021, QUANGBINH_DISTRICTS, ()),
                                           ("haiphong-2023", 274, HAIPHONG_DISTRICTS, tuple(HAIPHONG_CENTRAL))):
        (HERE / slug).mkdir(exist_ok=True)
        bank(HERE / slug / "questions.csv", 400, [None], seed=seed)
        units(HERE / slug / "units.csv", seed, NGHEAN_DEPARTMENTS[:18], districts, central)
