"""The shared prompt format."""

from retu.data import INSTRUCTION, build_messages, format_user, strip_instruction

ROW = {"problem": "Compute 7+5-3+9.", "solution": "7+5=12\n12-3=9\n9+9=18\n\\boxed{18}"}


def test_prompt_messages():
    assert INSTRUCTION == "Put the final answer in \\boxed{}."
    assert build_messages(ROW) == [
        {"role": "user", "content": "Compute 7+5-3+9.\nPut the final answer in \\boxed{}."}]


def test_sft_messages_with_system_prompt():
    assert build_messages(ROW, system_prompt="You are a calculator.", with_solution=True) == [
        {"role": "system", "content": "You are a calculator."},
        {"role": "user", "content": "Compute 7+5-3+9.\nPut the final answer in \\boxed{}."},
        {"role": "assistant", "content": "7+5=12\n12-3=9\n9+9=18\n\\boxed{18}"}]


def test_a_row_can_carry_its_own_instruction_or_none():
    assert build_messages({**ROW, "instruction": ""}) == [{"role": "user", "content": "Compute 7+5-3+9."}]
    assert build_messages({**ROW, "instruction": "Answer in one line."})[0]["content"] == \
        "Compute 7+5-3+9.\nAnswer in one line."
    from retu.tasks.arith import make_splits

    row = make_splits(0, 1, 0, 0)["train"][0]  # the embedded task's rows carry none
    assert row["instruction"] == "" and build_messages(row)[0]["content"] == row["problem"]


def test_strip_instruction_inverts_format_user():
    assert strip_instruction(format_user("What is 2+2?")) == "What is 2+2?"
    assert strip_instruction("No instruction here.") == "No instruction here."
